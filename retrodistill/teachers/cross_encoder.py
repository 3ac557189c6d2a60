"""A cross-encoder teacher (sentence-transformers ``CrossEncoder``), pointwise, length-bucketed."""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

from retrodistill.errors import ConfigError, MissingDependencyError, require
from retrodistill.precision import PRECISIONS, check_precision, resolve_precision
from retrodistill.revision import model_revision
from retrodistill.teachers.base import Teacher
from retrodistill.teachers.records import TeacherSpec

DTYPES = PRECISIONS
FLOAT_ENGINES = ("onnx", "openvino")
GRAPH_BACKENDS = ("onnx", "onnx-int8", "openvino", "openvino-bf16")
OTHER_SCORES = ("onnx-int8", "openvino-bf16")
"""Graph backends whose logits differ from torch's float32 ones: their stores are their own."""
BACKENDS = ("auto", "torch", *GRAPH_BACKENDS)
AUTO_PROBE_PAIRS = 16
AUTO_MAX_LOGIT_GAP = 1e-3
log = logging.getLogger(__name__)


class CrossEncoderTeacher(Teacher):
    """Scores (query, passage) pairs with any ``CrossEncoder`` (hub id or local folder).

    Scores are the model's raw logits (no sigmoid), higher = more relevant. Pairs are sorted by
    length, batched, scored, and put back in their order, so a batch pads to similar lengths.
    ``chunk_size`` pairs are scored and stored per transaction (it does not change scores).
    ``batch_size`` defaults to 32 on a GPU and 4 on CPU: on CPU a padded batch takes the masked
    attention path, and batches of 1-4 length-sorted pairs score 1.3-1.4x faster than batches of 32
    (SciFact, 512 tokens, measured in ``eval/results/teachers/README.md``).
    ``dtype="bfloat16"`` runs the forward pass under bfloat16 autocast: on some CPUs with AVX512-BF16 or
    AMX (and on GPUs) it is 2-3x faster, with logits within ~0.1 of float32 (Spearman 0.9999 in
    ``eval/bench_teach.py``); on others it is slower, and on AVX2-only CPUs it is emulated and ~6x slower.
    ``dtype="auto"`` (the default) picks bfloat16 only where it is native and measured faster
    (``retrodistill.precision``). The resolved
    dtype is part of the teacher's identity, so bfloat16 scores are stored apart from float32 ones
    (a float32 spec leaves ``dtype`` out, as before ``auto`` existed, so older float32 stores match).
    ``backend="onnx"`` runs the classifier on ONNX Runtime in float32 (the same logits within 1e-4, the same
    identity), ``openvino`` that graph on OpenVINO Runtime in float32 (the same, within 1e-3); ``openvino-bf16``
    on OpenVINO in bfloat16 where the CPU has it natively, ``onnx-int8`` on its int8 quantisation (other
    logits: stored under ``backend=openvino-bf16`` / ``backend=onnx-int8``). All run on CPU, bucketed by
    token length (``inference.buckets``). ``backend="auto"`` keeps the teacher's identity and picks its
    engine by measurement: where the teacher runs in float32 on CPU it times torch, ONNX float and OpenVINO
    (those that load) on the first pairs it is asked to score (best of 2 after a warm-up) and keeps the
    fastest whose logits match torch's within 1e-3; in bfloat16 or on a GPU it is torch (the others would
    change the scores or cannot run there). ``backend_report`` says what was measured.
    """

    granularity = "pointwise"

    def __init__(
        self,
        model: str,
        batch_size: int | None = None,
        max_length: int | None = None,
        device: str | None = None,
        chunk_size: int = 512,
        dtype: str = "auto",
        backend: str = "torch",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ConfigError(f"cross-encoder backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.backend = backend
        self.engine: str | None = None if backend == "auto" else backend
        self.backend_report: dict[str, Any] = {}
        self._graphs: dict[str, Any] = {}
        self.requested_dtype = "float32" if backend in GRAPH_BACKENDS else check_precision(dtype, "cross-encoder dtype")
        self.chunk_size = int(chunk_size)
        self.model_id = model
        self.batch_size = int(batch_size) if batch_size else None
        self.max_length = max_length
        self.device = device

    @cached_property
    def dtype(self) -> str:
        """The resolved dtype, ``float32`` or ``bfloat16``, for the device the model runs on."""
        return resolve_precision(self.requested_dtype, self._device_type())

    def _device_type(self) -> str:
        if self.device:
            return str(self.device).split(":")[0]
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @cached_property
    def spec(self) -> TeacherSpec:
        options: dict[str, object] = {"max_length": self.max_length}
        if self.dtype != "float32":
            options["dtype"] = self.dtype
        if self.backend in OTHER_SCORES:
            options["backend"] = self.backend
        return TeacherSpec(
            "cross-encoder", self.model_id, model_revision(self.model_id), "pointwise", "logit", "", options
        )

    @cached_property
    def model(self):
        CrossEncoder = require("sentence_transformers", purpose="cross-encoder teachers").CrossEncoder
        kwargs = {"device": self.device} if self.device else {}
        if self.max_length:
            kwargs["max_length"] = int(self.max_length)
        model = CrossEncoder(self.model_id, num_labels=1, **kwargs)
        model.eval()
        return model

    def load(self) -> None:
        self.model  # noqa: B018

    def _graph(self, engine: str) -> Any:
        """The exported classifier on ``engine`` (one of ``GRAPH_BACKENDS``), built on first use."""
        graphs = self._graphs
        if engine not in graphs:
            from retrodistill.inference.backends import engine_graph
            from retrodistill.inference.onnx import input_names

            if self.model.device.type != "cpu":
                raise ConfigError(f"the {engine} backend runs on CPU only; the model is on {self.model.device}")
            names = input_names(self.model.preprocess([("q", "p")]))
            module, revision = self.model[0].auto_model, model_revision(self.model_id)
            graphs[engine] = engine_graph(engine, module, names, "logits", revision)
        return graphs[engine]

    def _score_graph(self, pairs: list[tuple[str, str]], engine: str) -> list[float]:
        from retrodistill.inference.buckets import length_batches, take_rows

        graph = self._graph(engine)
        features = self.model.preprocess(pairs)
        pad_id = int(getattr(self.model.tokenizer, "pad_token_id", None) or 0)
        scores = [0.0] * len(pairs)
        lengths = features["attention_mask"].sum(1).tolist()
        for members, padded in length_batches(lengths, self.batch_size or 4, self.model.max_seq_length):
            logits = graph.run(take_rows(features, members, padded, pad_id))
            for i, value in zip(members, logits[:, 0], strict=True):
                scores[i] = float(value)
        return scores

    def _score_pairs(self, pairs: list[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        if self.engine is None:
            self.engine = self._choose_engine(pairs[:AUTO_PROBE_PAIRS])
        return self._score_torch(pairs) if self.engine == "torch" else self._score_graph(pairs, self.engine)

    def _choose_engine(self, probe: list[tuple[str, str]]) -> str:
        """``auto``: torch, or the fastest float engine that scores ``probe`` with torch's logits."""
        if self.dtype != "float32" or self.model.device.type != "cpu":
            self.backend_report = {"torch": f"the only engine for {self.dtype} on {self.model.device.type}"}
            return "torch"
        from retrodistill.inference.backends import best_of

        report: dict[str, Any] = {}
        reference = self._score_torch(probe)
        engines: dict[str, Any] = {"torch": self._score_torch}
        for engine in FLOAT_ENGINES:
            try:
                self._graph(engine)
            except (MissingDependencyError, ConfigError) as exc:
                report[engine] = f"not available: {exc}"
                continue
            except Exception as exc:  # an architecture the exporter cannot trace: score on torch
                report[engine] = f"export failed: {type(exc).__name__}: {exc}".splitlines()[0]
                continue
            scores = self._score_graph(probe, engine)
            gap = max((abs(a - b) for a, b in zip(reference, scores, strict=True)), default=0.0)
            if gap > AUTO_MAX_LOGIT_GAP:
                report[engine] = f"left out: logits {gap:.2e} from torch's"
                continue
            engines[engine] = lambda pairs, e=engine: self._score_graph(pairs, e)
        seconds = {name: best_of(2, lambda f=score: f(probe)) for name, score in engines.items()}
        self.backend_report = {**{name: round(value, 5) for name, value in seconds.items()}, **report}
        engine = min(seconds, key=seconds.__getitem__)
        log.info("cross-encoder backend auto -> %s (probe of %d pairs: %s)", engine, len(probe), self.backend_report)
        return engine

    def _score_torch(self, pairs: list[tuple[str, str]]) -> list[float]:
        torch = require("torch", purpose="cross-encoder teachers")

        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        autocast = torch.autocast(self.model.device.type, dtype=torch.bfloat16, enabled=self.dtype == "bfloat16")
        with torch.inference_mode(), autocast:
            logits = self.model.predict(
                [pairs[i] for i in order],
                batch_size=self.batch_size or (4 if self.model.device.type == "cpu" else 32),
                activation_fn=torch.nn.Identity(),
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        scores = [0.0] * len(pairs)
        for position, i in enumerate(order):
            scores[i] = float(logits[position])
        return scores
