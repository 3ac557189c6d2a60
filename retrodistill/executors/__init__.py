"""Where batch stages run: in this process (the default, nothing to import), or on Ray Data.

A stage (corpus encoding, teacher scoring) cuts its work into payloads and hands ``map_payloads`` a
``factory``: a picklable callable that, called once per worker, builds the model and returns the function
applied to each payload. Results come back to the calling process as ``(index, result)`` pairs as they
finish, and the stage writes them to its own resumable store (shards, score store), so a killed run
resumes the same way whichever executor ran it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from retrodistill.errors import ConfigError
from retrodistill.executors.options import RayOptions

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayOptions", "make_executor"]

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    name: str

    def map_payloads(
        self, factory: Callable[[], Callable[[Any], Any]], payloads: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]: ...


class LocalExecutor:
    """One worker in this process, payloads in order."""

    name = "local"

    def map_payloads(
        self, factory: Callable[[], Callable[[Any], Any]], payloads: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        if not payloads:
            return
        fn = factory()
        for i, payload in enumerate(payloads):
            yield i, fn(payload)


def make_executor(name: str = "local", ray: RayOptions | dict[str, Any] | None = None) -> Executor:
    """The executor called ``name`` (``local`` or ``ray``); Ray is imported only for ``ray``."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        from retrodistill.executors.ray_data import RayExecutor

        return RayExecutor(ray if isinstance(ray, RayOptions) else RayOptions(**(ray or {})))
    raise ConfigError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
