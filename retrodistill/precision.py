"""Which floating-point precision a forward pass runs in: ``auto``, ``float32`` or ``bfloat16``.

``auto`` picks bfloat16 only where it is both native and measured faster. On a CUDA GPU, native
support suffices. On a CPU, the flags come first (``avx512_bf16`` / ``amx_bf16`` in ``/proc/cpuinfo``;
``bf16`` on aarch64): without them bfloat16 autocast is emulated, about 6x slower than float32 (a
MiniLM ``nn.Linear(384, 1536)`` on 256 x 384: 306 ms vs 50 ms). With them it still need not pay: on a
2-core Xeon listing ``avx512_bf16`` a MiniLM-sized MLP ran forward+backward at 0.65x float32 under
bfloat16 autocast, a cross-encoder scored at 0.70x and an LLM at 0.59x. So ``auto`` then times a small
MLP both ways (:func:`bf16_speedup`) and takes bfloat16 only at >= ``MIN_SPEEDUP``; the verdict is kept
per machine (CPU model, flags, torch version, threads) in the cache folder, so one machine always
resolves ``auto`` the same way and a teacher's identity does not flip with the load of the moment.
``torch.backends.cpu.get_cpu_capability()`` cannot tell: it says ``AVX512`` both with and without
AVX512-BF16. The environment variable ``RETRODISTILL_PRECISION`` (``float32`` / ``bfloat16`` /
``auto``) overrides ``auto`` everywhere, e.g. to time a float32-only machine on one with bfloat16;
an explicit setting in a config or spec is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from functools import cache
from typing import Literal

from retrodistill.cache import default_cache_dir
from retrodistill.errors import ConfigError

log = logging.getLogger(__name__)

Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")
ENV = "RETRODISTILL_PRECISION"
_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
MIN_SPEEDUP = 1.2
PROBE_VERSION = 1
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


def _cpu_info() -> tuple[str, set[str]]:
    """(model name, flags) of the CPU from ``/proc/cpuinfo``; ("", empty) where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            info = handle.read()
    except OSError:
        return "", set()
    name, flags = "", set()
    for line in info.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features"):
            flags.update(value.split())
        elif key == "model name" and not name:
            name = value.strip()
    return name, flags


@cache
def _cpu_has_bf16() -> bool:
    flags = _cpu_info()[1]
    if platform.machine().lower() in ("aarch64", "arm64") and "bf16" in flags:
        return True
    return any(flag in flags for flag in _CPU_FLAGS)


def bf16_speedup(repeats: int = 5) -> dict[str, float]:
    """Time a MiniLM-sized MLP (512 x 384 -> 1536 -> 384, forward + backward) in float32 and under
    bfloat16 autocast on the CPU: best of ``repeats`` after a warm-up, in seconds, and their ratio
    ``speedup`` (float32 time / bfloat16 time; above 1 means bfloat16 is faster).

    The probe measures the same thing whatever the caller's grad mode: callers resolve precision lazily,
    often inside ``torch.inference_mode()`` or ``torch.no_grad()``, which it leaves for its own work.
    """
    import torch

    with torch.inference_mode(False), torch.enable_grad():
        generator = torch.Generator().manual_seed(0)
        layers = torch.nn.Sequential(torch.nn.Linear(384, 1536), torch.nn.GELU(), torch.nn.Linear(1536, 384))
        x = torch.randn(512, 384, generator=generator, requires_grad=True)

        def best(bf16: bool) -> float:
            times = []
            for _ in range(repeats + 1):
                started = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    out = layers(x)
                out.float().sum().backward()
                times.append(time.perf_counter() - started)
            return min(times[1:])

        float32, bfloat16 = best(False), best(True)
    return {"float32_s": float32, "bfloat16_s": bfloat16, "speedup": float32 / bfloat16}


def _machine_key() -> str:
    import torch

    name, flags = _cpu_info()
    text = json.dumps([PROBE_VERSION, name, sorted(flags), torch.__version__, torch.get_num_threads()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@cache
def cpu_bf16_pays() -> bool:
    """Whether bfloat16 autocast is native on this CPU and measured >= ``MIN_SPEEDUP`` x float32.

    The measurement runs once per machine key and is kept in ``<cache>/precision/<key>.json``; a file
    that does not parse or names another key is measured again and replaced atomically.
    """
    if not _cpu_has_bf16():
        return False
    from retrodistill.atomic import write_json

    key = _machine_key()
    path = default_cache_dir() / "precision" / f"{key}.json"
    try:
        record = json.loads(path.read_text())
        if record.get("key") == key and isinstance(record.get("speedup"), float):
            return record["speedup"] >= MIN_SPEEDUP
    except (OSError, ValueError, AttributeError):
        pass
    record = {"key": key, "cpu": _cpu_info()[0], **bf16_speedup()}
    log.info(
        "bfloat16 autocast on this CPU: %.2fx float32 (%.1f vs %.1f ms), so precision auto is %s",
        record["speedup"],
        record["bfloat16_s"] * 1e3,
        record["float32_s"] * 1e3,
        "bfloat16" if record["speedup"] >= MIN_SPEEDUP else "float32",
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, record)
    except OSError as error:
        log.warning("could not keep the precision probe in %s: %s", path, error)
    return record["speedup"] >= MIN_SPEEDUP


def bf16_pays(device: str = "cpu") -> bool:
    """Whether ``auto`` takes bfloat16 on ``device``: native on a GPU; native and measured faster on a CPU."""
    if device == "cpu":
        return cpu_bf16_pays()
    return native_bf16(device)


def resolve_precision(requested: str, device: str = "cpu") -> str:
    """``"float32"`` or ``"bfloat16"`` for ``requested`` on ``device`` (a torch device type).

    ``auto`` (or ``$RETRODISTILL_PRECISION`` when ``requested`` is auto) becomes bfloat16 where
    :func:`bf16_pays` holds and float32 elsewhere. An explicit bfloat16 where it does not pay is kept,
    with one warning per device type saying why it is slow.
    """
    check_precision(requested)
    if requested == "auto":
        requested = check_precision(os.environ.get(ENV, "auto").strip().lower() or "auto", ENV)
    device = str(device).split(":")[0]
    if requested == "auto":
        return "bfloat16" if bf16_pays(device) else "float32"
    if requested == "bfloat16" and device not in _warned and not bf16_pays(device):
        _warned.add(device)
        if native_bf16(device):
            log.warning(
                "bfloat16 requested on %s, where it is native but measured slower than float32 (see %s); "
                "use precision auto or float32",
                device,
                default_cache_dir() / "precision",
            )
        else:
            log.warning(
                "bfloat16 requested on %s without native bfloat16 (no AVX512-BF16/AMX): it runs emulated, about "
                "6x slower than float32 on AVX2 CPUs; use precision auto or float32",
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
