"""Process memory: the peak resident set of a stage, and handing a finished stage's memory back.

On Linux the kernel's high-water mark (``VmHWM``) can be reset by writing ``5`` to
``/proc/self/clear_refs``, so each stage of a pipeline reports its own peak, not the process's peak so
far. Elsewhere (or where the write is refused) the peak is ``getrusage``'s, which only grows.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
import sys
from pathlib import Path


def reset_peak() -> bool:
    """Start a new peak measurement; False where the platform cannot (the peak then covers the process)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """Peak resident set size since the last ``reset_peak`` (else since the start), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024


def rss_mb() -> float:
    """Resident set size now, in MiB (0 where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def release() -> None:
    """Collect garbage, empty torch's CUDA cache when torch is loaded, and return freed heap pages to the
    system (glibc ``malloc_trim``), so memory a finished stage dropped leaves the process's RSS."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
