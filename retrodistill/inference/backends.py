"""Inference backends of a bi-encoder: which engine runs the forward pass, and ``auto``'s measured choice.

``torch`` runs the sentence-transformers modules; ``onnx`` runs the same transformer exported to ONNX
Runtime (float32: the same vectors within 1e-6); ``openvino`` runs that exported graph on OpenVINO Runtime
(float32: the same vectors within ~1e-6); ``openvino-bf16`` runs it in bfloat16 where the CPU has it natively
(AMX / AVX512-BF16: faster, vectors change a little; float32 elsewhere); ``onnx-int8`` runs it quantised to
int8 (smaller and usually faster, vectors change: measure the metric before serving it). Dynamic int8 scales activations
per batch, so a text's int8 vector also moves a little (~1e-2) with the texts it is batched with.
``auto`` times the float backends that load here on the workload's first texts (or short queries) at batch
1 and up to 16 and keeps the fastest whose vectors match torch's (cosine >= 0.9999); int8 and bfloat16 are never
picked by ``auto``, since they change the vectors (an index and its queries may then mix engines freely).
On a GPU ``auto`` is torch: ONNX Runtime and OpenVINO run here on CPU only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from retrodistill.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

FLOAT_ENGINES = ("onnx", "openvino")
"""The engines ``auto`` measures against torch: float32, so the same vectors."""
BACKENDS: dict[str, str] = {
    "auto": "the fastest float backend measured at load (torch, onnx or openvino)",
    "torch": "sentence-transformers on torch",
    "onnx": "ONNX Runtime, float32 (the same vectors)",
    "openvino": "OpenVINO Runtime on the ONNX export, float32 (the same vectors)",
    "openvino-bf16": "OpenVINO Runtime in bfloat16 where the CPU has it natively (vectors change a little)",
    "onnx-int8": "ONNX Runtime, int8 dynamic quantisation (vectors change)",
}
OTHER_VECTORS = ("openvino-bf16", "onnx-int8")
"""The backends whose vectors differ from torch's (their own embedding caches)."""
Forward = Callable[[dict[str, Any]], Any]
PROBE = [
    "what causes muscle cramps during exercise",
    "effects of vitamin d on bone density in older adults",
    "how are transformers trained",
    "a short query",
]


def check_backend(name: str) -> str:
    """``name`` if it is a backend, else a ConfigError naming the choices."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown inference backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    return name


def load_backend(name: str, model: Any, revision: str, threads: int | None = None) -> Forward:
    """The forward of backend ``name`` (not ``auto``) for sentence-transformers ``model``: features -> embeddings."""
    if name == "torch":
        return _torch_forward(model)
    if str(model.device) != "cpu":
        raise ConfigError(f"the {name} backend runs on CPU only; the model is on {model.device}: use --backend torch")
    from retrodistill.inference.onnx import OnnxTransformer, input_names

    names = input_names(model.preprocess(["retrodistill"]))
    graph = engine_graph(name, model[0].auto_model, names, "last_hidden_state", revision, threads)
    return OnnxTransformer(model, graph)


def engine_graph(
    name: str, module: Any, names: list[str], output: str, revision: str, threads: int | None = None
) -> Any:
    """Transformer ``module`` exported to ONNX and run on engine ``name`` (onnx, onnx-int8, openvino,
    openvino-bf16): an object whose ``run(features)`` returns ``output`` as a float32 array."""
    if name.startswith("openvino"):
        from retrodistill.inference.openvino import OpenVinoGraph

        return OpenVinoGraph(module, names, output, revision, threads, bf16=name == "openvino-bf16")
    from retrodistill.inference.onnx import OnnxGraph

    return OnnxGraph(module, names, output, revision, name == "onnx-int8", threads)


def choose_backend(
    model: Any,
    revision: str,
    embed: Callable[[Forward, list[str]], Any],
    threads: int | None = None,
    probe: list[str] | None = None,
) -> tuple[str, Forward, dict[str, Any]]:
    """``auto``: (name, forward, report) of the fastest float backend whose vectors match torch's.

    ``embed(forward, texts)`` encodes texts with a forward (the encoder's own batching), so the probe
    measures what encoding will cost. ``probe`` are texts of the workload (the first texts the encoder is
    asked for: passages when it builds an index, queries when it serves), timed at batch 1 and up to 16;
    without them, short ``PROBE`` queries. The report holds each candidate's seconds or why it was left out.
    """
    torch_forward = _torch_forward(model)
    if str(model.device) != "cpu":
        return "torch", torch_forward, {"torch": "the only backend on " + str(model.device)}
    candidates: dict[str, Forward] = {"torch": torch_forward}
    report: dict[str, Any] = {}
    for engine in FLOAT_ENGINES:
        try:
            candidates[engine] = load_backend(engine, model, revision, threads)
        except (MissingDependencyError, ConfigError) as exc:
            report[engine] = f"not available: {exc}"
        except Exception as exc:  # an architecture the exporter cannot trace: auto must still serve
            first = str(exc).splitlines()[0] if str(exc) else ""
            report[engine] = f"export failed: {type(exc).__name__}: {first}"
    if len(candidates) == 1:
        log.warning("inference backend auto -> torch (%s)", "; ".join(f"{k} {v}" for k, v in report.items()))
        return "torch", torch_forward, report
    texts = list(probe[:16]) if probe else PROBE * 4
    reference = embed(torch_forward, texts)
    seconds: dict[str, float] = {}
    for name, forward in candidates.items():
        vectors = embed(forward, texts)
        agreement = float(_row_cosines(reference, vectors).min())
        if agreement < 0.9999:
            report[name] = f"left out: cosine to torch {agreement:.5f}"
            continue
        seconds[name] = best_of(3, lambda f=forward: (embed(f, texts[:1]), embed(f, texts)))
        report[name] = round(seconds[name], 5)
    name = min(seconds, key=seconds.__getitem__)
    log.info("inference backend auto -> %s (probe seconds: %s)", name, report)
    return name, candidates[name], report


def _torch_forward(model: Any) -> Forward:
    def forward(features: dict[str, Any]) -> Any:
        return model(features)["sentence_embedding"]

    return forward


def _row_cosines(a: Any, b: Any) -> Any:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    """The fastest of ``repeats`` timed calls of ``fn``, after one untimed warm-up call (seconds)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
