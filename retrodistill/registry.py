"""One registry per extension point. Entries are import paths, so listing them imports nothing heavy."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from retrodistill.errors import ConfigError, missing_dependency


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    target: str
    help: str


class Registry:
    """Names -> ``"module:attribute"`` targets, loaded on first use."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: str, help: str = "") -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, help)

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Any:
        """The registered object; an unknown name is a ConfigError listing the choices, and a module that
        needs a missing optional package is a MissingDependencyError naming the extra."""
        if name not in self._entries:
            choices = ", ".join(self._entries) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {choices}")
        module_name, _, attr = self._entries[name].target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            error = missing_dependency(exc, purpose=f"{self.kind} {name!r}")
            if error is None:
                raise
            raise error from None
        return getattr(module, attr)
