"""Process memory: the peak resident set of a stage, and handing a finished stage's memory back.

On Linux the kernel's high-water mark (``VmHWM``) can be reset by writing ``5`` to
``/proc/self/clear_refs``, so each stage of a pipeline reports its own peak, not the process's peak so
far. Elsewhere (or where the write is refused) the peak is ``getrusage``'s, which only grows. Stages
nest: a pipeline stage (``mark`` / ``peak_since_mark``) keeps the highest of the peaks its parts reset
(``reset_peak`` / ``peak_rss_mb``, e.g. one per evaluated system). The kernel's reset also resets
``getrusage``'s ``ru_maxrss``, so an outer ``/usr/bin/time -v`` sees only the last part's peak.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
import sys
from pathlib import Path

_cleared = 0.0  # the highest peak reset_peak cleared since the last mark


def reset_peak() -> bool:
    """Start a new peak measurement; False where the platform cannot (the peak then covers the process)."""
    global _cleared
    _cleared = max(_cleared, peak_rss_mb())
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def mark() -> bool:
    """Start an outer measurement (a pipeline stage) that parts may reset inside (see the module doc)."""
    global _cleared
    done = reset_peak()
    _cleared = 0.0
    return done


def peak_since_mark() -> float:
    """Peak resident set size since the last ``mark``, in MiB, across the resets made inside it."""
    return max(_cleared, peak_rss_mb())


def peak_rss_mb() -> float:
    """Peak resident set size since the last ``reset_peak`` (else since the start), in MiB."""
    peak = _status_mib("VmHWM")
    if peak is not None:
        return peak
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / 1024


def rss_mb() -> float:
    """Resident set size now, in MiB (0 where /proc is missing)."""
    return _status_mib("VmRSS") or 0.0


def _status_mib(key: str) -> float | None:
    """A ``kB`` line of ``/proc/self/status`` in MiB, or None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def release() -> None:
    """Collect garbage, empty torch's CUDA cache when torch is loaded, and return freed heap pages to the
    system (glibc ``malloc_trim``), so memory a finished stage dropped leaves the process's RSS."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
