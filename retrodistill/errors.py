"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations


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
    """An optional dependency is not installed; the message carries the pip command."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = "", fix: str | None = None) -> None:
        fix = fix or (f"pip install 'retrodistill[{extra}]'" if extra else f"pip install {package}")
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"the optional package '{package}' is not installed{what}; fix: {fix}")
        self.package = package
