"""ONNX Runtime as the inference engine of a transformer (a bi-encoder's encoder, a cross-encoder's
classifier), float32 or int8.

The transformer is exported once with ``torch.onnx`` (dynamic batch and sequence axes) into
``$RETRODISTILL_CACHE/onnx/<key>/``, where the key covers the weights' revision, the quantisation and the
exporter versions; int8 is onnxruntime's dynamic quantisation of that graph (per-channel weights with a
7-bit range, which AVX2 CPUs without VNNI need to avoid saturating their int8 dot products). The folder
is written under a temporary name and renamed into place, and a ``.json`` record beside each graph holds
its size and SHA-256, checked on every load. Pooling and normalisation stay the model's own modules,
so only the transformer's arithmetic changes engine. The same float graph is what the OpenVINO engine
compiles (``inference.openvino``). sentence-transformers' own ``backend="onnx"`` / ``"openvino"`` need
optimum, which pins transformers below 5; this path needs only onnx and onnxruntime (and openvino).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from retrodistill.atomic import sha256_file
from retrodistill.cache import default_cache_dir
from retrodistill.errors import ConfigError, require

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1
OPSET = 17
INT8 = "dynamic int8, per-channel weights, reduce_range"


class OnnxGraph:
    """A Hugging Face transformer ``module`` (fed ``names``, returning ``output``: ``last_hidden_state`` or
    ``logits``) exported once and run by an onnxruntime session of ``threads`` intra-op threads."""

    def __init__(
        self,
        module: Any,
        names: list[str],
        output: str,
        revision: str,
        quantize: bool = False,
        threads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        ort = require("onnxruntime", purpose="the onnx inference backend", extra="onnx")
        import torch

        self.names, self.quantize = list(names), bool(quantize)
        self.path = exported_graph(module, self.names, output, revision, self.quantize, cache_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def run(self, features: dict[str, Any]) -> Any:
        """The output for tokenizer ``features`` (tensors or arrays), a float32 numpy array."""
        return self.session.run(None, feeds(features, self.names))[0]


def exported_graph(
    module: Any,
    names: list[str],
    output: str,
    revision: str,
    quantize: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The path of ``module``'s ONNX graph (``model.onnx``, or ``model-int8.onnx`` with ``quantize``), exported
    on the first call and checked against its recorded checksum on every call."""
    require("onnxruntime", purpose="exporting a model to ONNX", extra="onnx")
    description = _description(revision, output)
    key = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir or default_cache_dir()) / "onnx" / key
    path = folder / ("model-int8.onnx" if quantize else "model.onnx")
    if not path.exists():
        _export(module, list(names), output, folder, quantize, description)
    _verify(path)
    return path


def feeds(features: dict[str, Any], names: list[str]) -> dict[str, np.ndarray]:
    """Tokenizer ``features`` (tensors or arrays) as the int64 arrays a graph fed ``names`` takes."""
    arrays = {
        name: np.asarray(features[name].cpu() if hasattr(features[name], "cpu") else features[name]) for name in names
    }
    return {k: v.astype(np.int64, copy=False) for k, v in arrays.items()}


def _description(revision: str, output: str) -> dict[str, Any]:
    """What an export folder depends on: the weights, the output and the exporting versions (the float and
    int8 graphs share it)."""
    import onnxruntime
    import torch

    return {
        "format": EXPORT_FORMAT,
        "revision": revision,
        "output": output,
        "opset": OPSET,
        "torch": torch.__version__.split("+")[0],
        "onnxruntime": onnxruntime.__version__,
    }


class OnnxTransformer:
    """A sentence-transformers bi-encoder's forward (``model.preprocess`` features -> sentence embeddings,
    a float32 tensor) with its transformer run by ``graph`` (its ONNX export on an engine: ``OnnxGraph``,
    float or int8, or ``inference.openvino.OpenVinoGraph``) and its pooling / normalisation in torch."""

    def __init__(self, model: Any, graph: Any) -> None:
        self.model, self.graph = model, graph

    def __call__(self, features: dict[str, Any]) -> Any:
        import torch

        out = {**features, "token_embeddings": torch.from_numpy(self.graph.run(features))}
        for module in list(self.model)[1:]:
            out = module(out)
        return out["sentence_embedding"]


def input_names(features: Any) -> list[str]:
    """The tokenizer outputs a text transformer is fed, in a fixed order; a ConfigError for other models."""
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in features]
    if "input_ids" not in names or "attention_mask" not in names:
        raise ConfigError(
            f"the onnx backend exports text transformers fed input_ids and attention_mask; this model's "
            f"inputs are {sorted(features)}; use --backend torch"
        )
    return names


def _export(
    module: Any, names: list[str], output: str, folder: Path, quantize: bool, description: dict[str, Any]
) -> None:
    """Write ``folder`` with model.onnx (and model-int8.onnx), each with its ``.json`` record, atomically:
    built in a temporary folder beside it, then renamed (or, when ``folder`` exists, its missing files moved in)."""
    require("onnx", purpose="exporting a model for the onnx backend", extra="onnx")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        fp32 = folder / "model.onnx"
        tmp_fp32 = tmp / fp32.name
        if fp32.exists():
            shutil.copyfile(fp32, tmp_fp32)
        else:
            log.info("exporting %s to ONNX (once; cached in %s)", description["revision"], folder)
            _torch_export(module, names, output, tmp_fp32)
        files = [tmp_fp32]
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            tmp_int8 = tmp / "model-int8.onnx"
            quantize_dynamic(
                str(tmp_fp32), str(tmp_int8), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True
            )
            files.append(tmp_int8)
        for path in files:
            _seal(path, {**description, "quantize": INT8 if path.name.endswith("-int8.onnx") else None})
        if folder.exists():  # the float graph was there already (or another process finished first)
            for path in files:
                target = folder / path.name
                if not target.exists():  # the record first: a graph is used only once its record is there
                    os.replace(_sidecar(path), _sidecar(target))
                    os.replace(path, target)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _torch_export(module: Any, names: list[str], output: str, path: Path) -> None:
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *inputs: Any) -> Any:
            return getattr(self.inner(**dict(zip(names, inputs, strict=True))), output)

    example = {name: torch.ones((2, 8), dtype=torch.long) for name in names}
    example["attention_mask"][1, 5:] = 0
    if "token_type_ids" in example:
        example["token_type_ids"].zero_()
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[output] = {0: "batch", 1: "sequence"} if output == "last_hidden_state" else {0: "batch"}
    graph = Graph().eval()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            tuple(example[name] for name in names),
            str(path),
            input_names=names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _seal(path: Path, description: dict[str, Any]) -> None:
    record = {**description, "file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    _sidecar(path).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _verify(path: Path) -> None:
    """ConfigError unless ``path`` has the size and SHA-256 its sidecar recorded at export."""
    fix = f"delete {path.parent} and it is exported again"
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: the export record is missing or unreadable ({exc}); {fix}") from None
    if path.stat().st_size != record.get("bytes") or sha256_file(path) != record.get("sha256"):
        raise ConfigError(f"{path}: the exported graph does not match its checksum (damaged or changed); {fix}")
