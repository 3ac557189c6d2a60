"""Micro-batching: queries of concurrent requests share one encoder forward in a worker thread.

The loop takes every queued item (up to ``max_batch``), waits at most ``max_wait_ms`` for more,
then runs ``fn`` on the batch in a single worker thread, so the event loop keeps accepting
requests while the model runs; items that arrive during a forward form the next batch.
The wait is skipped while traffic is sequential (the previous batch held one item), so a lone
client pays no batching delay. ``max_batch=1`` is the naive one-forward-per-query server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """``await submit(items)`` returns ``fn``'s results for ``items``; ``fn`` maps a list to a list."""

    def __init__(
        self,
        fn: Callable[[list[T]], list[R]],
        max_batch: int = 32,
        max_wait_ms: float = 1.0,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_ms >= 0")
        self.fn, self.max_batch, self.max_wait = fn, int(max_batch), max_wait_ms / 1000.0
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrodistill-forward")
        self._task = asyncio.create_task(self._loop(), name="retrodistill-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue is not None:
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, items: list[T]) -> list[R]:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = [loop.create_future() for _ in items]
        for item, future in zip(items, futures, strict=True):
            self._queue.put_nowait((item, future))
        if len(futures) == 1:  # the common case, without gather's extra future and loop turn
            return [await futures[0]]
        return list(await asyncio.gather(*futures))

    def _drain(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        assert self._queue is not None
        while len(batch) < self.max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        last_size = 1
        while True:
            batch = [await self._queue.get()]
            self._drain(batch)
            deadline = loop.time() + (self.max_wait if len(batch) > 1 or last_size > 1 else 0.0)
            while len(batch) < self.max_batch and loop.time() < deadline:
                await asyncio.sleep(min(deadline - loop.time(), 0.0005))
                self._drain(batch)
            batch = [(item, future) for item, future in batch if not future.done()]
            if not batch:
                continue
            last_size = len(batch)
            start = time.perf_counter()
            try:
                results: list[Any] = await loop.run_in_executor(self._executor, self.fn, [i for i, _ in batch])
            except Exception as exc:  # the error goes to every waiting request
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch), time.perf_counter() - start)
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
