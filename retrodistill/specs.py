"""System specs as users type them: ``KIND[:ARG][,key=value,...]``.

Examples: ``bm25s``, ``bm25s,k1=1.2,b=0.75``, ``pyserini``, ``dense:sentence-transformers/all-MiniLM-L6-v2``,
``dense:models/my-student,batch_size=32,label=student``, ``run:eval/runs/x/bm25s.trec``.
The option ``label`` names the system in tables and output files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from retrodistill.errors import ConfigError


@dataclass(frozen=True)
class SystemSpec:
    kind: str
    arg: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or (f"{self.kind}:{self.arg}" if self.arg else self.kind)

    @property
    def slug(self) -> str:
        """A file-name-safe form of ``name``."""
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name)


def parse_spec(text: str) -> SystemSpec:
    head, *pairs = [part.strip() for part in text.split(",")]
    kind, _, arg = head.partition(":")
    if not kind:
        raise ConfigError(f"empty system spec {text!r}; expected KIND[:ARG][,key=value...], e.g. bm25s,k1=0.9")
    options: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise ConfigError(f"bad option {pair!r} in system spec {text!r}; write key=value, e.g. {kind},k1=0.9")
        options[key.strip()] = _value(value.strip())
    label = str(options.pop("label", ""))
    return SystemSpec(kind.strip(), arg.strip() or None, options, label)


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
