"""OpenVINO Runtime as the inference engine of a transformer: the exported ONNX float graph
(``inference.onnx.exported_graph``, the same file and cache as the onnx backend) compiled for the CPU.

The precision hint is float32 unless bfloat16 is asked for: on CPUs with AVX512-BF16 or AMX, OpenVINO would
otherwise run in bfloat16 and change the vectors. In float32 hidden states match torch's within ~1e-4 and
normalised sentence vectors within ~1e-6 (other kernels, the same arithmetic). In bfloat16 (the
``openvino-bf16`` backend) the vectors move (cosine to float32 ~0.99998 for MiniLM queries on an AMX Xeon)
and short queries run ~1.6x faster there; on a CPU without native bfloat16 OpenVINO keeps float32, and
``precision`` says which one runs.
OpenVINO has no fast path for onnxruntime's dynamic-int8 graph (measured 3-5x slower than onnxruntime on
it), so int8 stays onnxruntime's. The compiled model is shared; each calling thread gets its own infer
request, so a server's searches and its document updates run their forwards side by side, as on ONNX
Runtime.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from retrodistill.errors import require
from retrodistill.inference import onnx

log = logging.getLogger(__name__)


class OpenVinoGraph:
    """A Hugging Face transformer ``module`` (fed ``names``, returning ``output``: ``last_hidden_state`` or
    ``logits``) exported once to ONNX and run by OpenVINO on ``threads`` CPU threads, in float32, or with
    ``bf16`` in bfloat16 where the CPU computes it natively (``precision``: what OpenVINO runs)."""

    def __init__(
        self,
        module: Any,
        names: list[str],
        output: str,
        revision: str,
        threads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        bf16: bool = False,
    ) -> None:
        ov = require("openvino", purpose="the openvino inference backend", extra="openvino")
        import torch

        self.names = list(names)
        self.path = onnx.exported_graph(module, self.names, output, revision, False, cache_dir)
        config = {
            "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        self.compiled = ov.Core().compile_model(str(self.path), "CPU", config)
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
        if bf16 and self.precision != "bf16":
            log.warning("OpenVINO runs %s in %s: this CPU has no native bfloat16", self.path.name, self.precision)
        self._local = threading.local()

    def run(self, features: dict[str, Any]) -> Any:
        """The output for tokenizer ``features`` (tensors or arrays), a float32 numpy array (a copy)."""
        request = getattr(self._local, "request", None)
        if request is None:  # an infer request runs one forward at a time: one per calling thread
            request = self._local.request = self.compiled.create_infer_request()
        return request.infer(onnx.feeds(features, self.names), share_outputs=False)[0].copy()
