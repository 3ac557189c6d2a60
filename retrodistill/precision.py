"""Which floating-point precision a forward pass runs in: ``auto``, ``float32`` or ``bfloat16``.

``auto`` picks bfloat16 only where the hardware computes it natively: a CUDA GPU that supports it, or
a CPU with AVX512-BF16 or AMX (``avx512_bf16`` / ``amx_bf16`` in ``/proc/cpuinfo``; ``bf16`` on
aarch64). Elsewhere, e.g. on AVX2-only CPUs, bfloat16 autocast is emulated and about 6x slower than
float32 (a MiniLM ``nn.Linear(384, 1536)`` on 256 x 384: 306 ms vs 50 ms), so ``auto`` is float32
there. ``torch.backends.cpu.get_cpu_capability()`` cannot tell: it says ``AVX512`` both with and
without AVX512-BF16. The environment variable ``RETRODISTILL_PRECISION`` (``float32`` / ``bfloat16``
/ ``auto``) overrides ``auto`` everywhere, e.g. to time a float32-only machine on one with bfloat16;
an explicit setting in a config or spec is kept.
"""

from __future__ import annotations

import logging
import os
import platform
from functools import cache
from typing import Literal

from retrodistill.errors import ConfigError

log = logging.getLogger(__name__)

Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")
ENV = "RETRODISTILL_PRECISION"
_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_warned: set[str] = set()


def check_precision(value: str, what: str = "precision") -> str:
    """``value`` if it names a precision, else a ConfigError naming the choices."""
    if value not in PRECISIONS:
        raise ConfigError(f"{what} must be one of {', '.join(PRECISIONS)}, not {value!r}")
    return value


def native_bf16(device: str = "cpu") -> bool:
    """Whether ``device`` (a torch device type: cpu, cuda, ...) computes bfloat16 natively."""
    if device.startswith("cuda"):
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device == "cpu":
        return _cpu_has_bf16()
    return False


@cache
def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            info = handle.read()
    except OSError:
        return False
    flags: set[str] = set()
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    if platform.machine().lower() in ("aarch64", "arm64") and "bf16" in flags:
        return True
    return any(flag in flags for flag in _CPU_FLAGS)


def resolve_precision(requested: str, device: str = "cpu") -> str:
    """``"float32"`` or ``"bfloat16"`` for ``requested`` on ``device`` (a torch device type).

    ``auto`` (or ``$RETRODISTILL_PRECISION`` when ``requested`` is auto) becomes bfloat16 where
    :func:`native_bf16` holds and float32 elsewhere. An explicit bfloat16 without native support is
    kept, with one warning per device type saying what it costs.
    """
    check_precision(requested)
    if requested == "auto":
        requested = check_precision(os.environ.get(ENV, "auto").strip().lower() or "auto", ENV)
    device = str(device).split(":")[0]
    if requested == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    if requested == "bfloat16" and not native_bf16(device) and device not in _warned:
        _warned.add(device)
        log.warning(
            "bfloat16 requested on %s without native bfloat16 (no AVX512-BF16/AMX): it runs emulated, about 6x "
            "slower than float32 on AVX2 CPUs; use precision auto or float32",
            device,
        )
    return requested


def bf16_alias(data: object) -> object:
    """Config input with the deprecated ``bf16`` key read as ``precision`` (true: bfloat16, false: float32).

    Configs written before ``precision`` existed keep loading; giving both keys is an error.
    """
    if not isinstance(data, dict) or "bf16" not in data:
        return data
    data = dict(data)
    value = data.pop("bf16")
    if "precision" in data:
        raise ValueError("give precision (auto, float32 or bfloat16) only; bf16 is its deprecated alias")
    if not isinstance(value, bool):
        raise ValueError(f"bf16 must be true or false, not {value!r}; better, set precision to auto")
    data["precision"] = "bfloat16" if value else "float32"
    log.warning("config key bf16 is deprecated; read as precision=%s (auto picks per hardware)", data["precision"])
    return data


def torch_dtype(precision: str):
    """The torch dtype of a resolved precision name."""
    import torch

    return torch.bfloat16 if precision == "bfloat16" else torch.float32
