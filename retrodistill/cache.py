"""Where retrodistill keeps what it can rebuild: embedding shards, exported inference graphs."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$RETRODISTILL_CACHE`` or ``~/.cache/retrodistill``."""
    return Path(os.environ.get("RETRODISTILL_CACHE") or Path.home() / ".cache" / "retrodistill")
