"""Errors a user can act on (the CLI prints them as one line and exits non-zero), and require(): the one
place where a missing optional package becomes such an error, naming the extra that installs it."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import Any


class RetrodistillError(Exception):
    """Base class of user-facing errors: the message says what is wrong and how to fix it."""


class DataError(RetrodistillError):
    """Malformed or missing input data (files, ids, formats)."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class ConfigError(RetrodistillError):
    """An invalid option, spec or configuration value."""


class MissingDependencyError(RetrodistillError):
    """An optional dependency is not installed (or cannot be imported); the message carries the pip command."""

    def __init__(
        self,
        package: str,
        extra: str | None = None,
        purpose: str = "",
        fix: str | None = None,
        problem: str = "is not installed",
    ) -> None:
        fix = fix or (f"pip install 'retrodistill[{extra}]'" if extra else f"pip install {package}")
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"the optional package '{package}' {problem}{what}; fix: {fix}")
        self.package = package
        self.extra = extra


# Import name -> (pip package, pyproject extra that installs it). One table for every optional import;
# tests/test_packaging.py checks it against pyproject.toml and against the imports in the package.
OPTIONAL: dict[str, tuple[str, str]] = {
    "torch": ("torch", "train"),
    "sentence_transformers": ("sentence-transformers", "train"),
    "transformers": ("transformers", "train"),
    "huggingface_hub": ("huggingface-hub", "train"),
    "safetensors": ("safetensors", "train"),
    "accelerate": ("accelerate", "train"),
    "datasets": ("datasets", "train"),
    "faiss": ("faiss-cpu", "faiss"),
    "fastapi": ("fastapi", "serve"),
    "starlette": ("fastapi", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "prometheus_client": ("prometheus-client", "serve"),
    "httpx": ("httpx", "client"),
    "gguf": ("gguf", "llm"),
    "matplotlib": ("matplotlib", "plot"),
    "ray": ("ray", "ray"),
    "qdrant_client": ("qdrant-client", "qdrant"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "onnx": ("onnx", "onnx"),
    "openvino": ("openvino", "openvino"),
}
# faiss-cpu and faiss-gpu-cu12 both own the `faiss` module: the fix offers both and says to pick one.
FAISS_FIX = "pip install 'retrodistill[faiss]' (CPU) or 'retrodistill[gpu]' (CUDA 12); choose one, never both"


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_dependency(
    exc: ImportError, purpose: str = "", module: str = "", extra: str | None = None
) -> MissingDependencyError | None:
    """The user-facing error for a failed import of an optional package (``extra`` overrides OPTIONAL's
    extra, e.g. a wider one), or None when ``exc`` is about anything else and should propagate as it is."""
    name = (exc.name or "").split(".")[0]
    if name not in OPTIONAL:
        name = module.split(".")[0]
        if name not in OPTIONAL:
            return None
    package, default_extra = OPTIONAL[name]
    extra = extra or default_extra
    fix = FAISS_FIX if name == "faiss" else None
    if not _installed(name):
        return MissingDependencyError(package, extra=extra, purpose=purpose, fix=fix)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    upgrade = f"pip install -U '{package}'" if name != "faiss" else FAISS_FIX
    return MissingDependencyError(
        package, extra=extra, purpose=purpose, fix=upgrade, problem=f"is installed but cannot be imported ({first})"
    )


def require(module: str, purpose: str = "", extra: str | None = None) -> Any:
    """Import the optional ``module`` (a name in OPTIONAL) at its point of use; when it is missing, a
    MissingDependencyError whose fix is the ``pip install 'retrodistill[EXTRA]'`` that provides it
    (``extra`` names a wider extra that also includes it, so one install brings the whole feature)."""
    if module.split(".")[0] not in OPTIONAL:
        raise ValueError(f"{module!r} is not an optional dependency; add it to retrodistill.errors.OPTIONAL")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        error = missing_dependency(exc, purpose, module, extra)
        if error is None:
            raise
        raise error from None


def optional(module: str, skipped: str) -> Any | None:
    """``module`` if it imports, else None after one warning saying that ``skipped`` (an optional output,
    e.g. a plot) is left out and which pip command brings it back."""
    try:
        return require(module, purpose=skipped)
    except MissingDependencyError as exc:
        logging.getLogger("retrodistill").warning("%s skipped: %s", skipped, exc)
        return None
