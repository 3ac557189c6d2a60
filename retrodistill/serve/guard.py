"""Request guards of the search server, all checked before any work: the API key (one
``X-API-Key`` header, constant-time compare), the body size and body deadline, the per-request cost
budget and re-ranking caps, and the scrubbing of local paths from what a client without the key sees."""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import time
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from retrodistill.serve.metrics import Metrics
from retrodistill.serve.settings import ServeSettings


class BodyTooLarge(HTTPException):
    """Raised while reading a body past the limit; an HTTPException so FastAPI passes it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes", {"Connection": "close"})


class BodyTimeout(HTTPException):
    """Raised when a body is not received within the deadline; the answer closes the connection."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408, f"request body not received within {seconds:g} s; send the whole body at once", {"Connection": "close"}
        )


KEY_HEADER = b"x-api-key"
KEYED_ROUTES = {("POST", "/search"), ("POST", "/compare")}


def key_status(scope: dict, settings: ServeSettings) -> str:
    """``"none"`` (no key configured, or none sent), ``"ok"`` (exactly one X-API-Key header, the right
    one) or ``"bad"`` (a wrong key, or more than one X-API-Key header). Compared in constant time."""
    if settings.api_key is None:
        return "none"
    sent = [value for name, value in scope.get("headers") or [] if name.lower() == KEY_HEADER]
    if not sent:
        return "none"
    if len(sent) > 1:
        return "bad"
    return "ok" if hmac.compare_digest(sent[0], settings.api_key.get_secret_value().encode()) else "bad"


class Guard:
    """Pure ASGI middleware, before any body is read: the API key of keyed routes (401), the body
    limit (413) and the body deadline (408); and per-endpoint request metrics."""

    def __init__(self, app: Any, settings: ServeSettings, metrics: Metrics) -> None:
        self.app, self.settings, self.metrics = app, settings, metrics
        self.limit, self.body_timeout = settings.max_body_bytes, settings.body_timeout_s

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}
        label = "unmatched"

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        length = dict(scope.get("headers") or []).get(b"content-length")
        try:
            too_big = length is not None and int(length) > self.limit
        except ValueError:
            too_big = False
        keyed = (scope.get("method"), scope.get("path")) in KEYED_ROUTES and self.settings.api_key is not None
        if keyed and key_status(scope, self.settings) != "ok":
            label = scope["path"]
            await json_error(send_wrapper, 401, KEY_MESSAGE)
        elif too_big:
            await json_error(send_wrapper, 413, f"request body larger than {self.limit} bytes")
        else:
            await self.app(scope, self._receive(receive), send_wrapper)
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or label
        self.metrics.observe_request(endpoint, status["code"], time.perf_counter() - start)

    def _receive(self, receive: Callable) -> Callable:
        """``receive`` with the body limit and a deadline for the whole body (slow senders get 408)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        seen, done = 0, False

        async def limited_receive() -> dict:
            nonlocal seen, done
            if done:
                return await receive()
            try:  # asyncio.timeout, not wait_for: no task per receive
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.body_timeout) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
                done = not message.get("more_body", False)
            else:
                done = True
            return message

        return limited_receive


KEY_MESSAGE = "missing or wrong API key; send it in one X-API-Key header"


async def json_error(send: Callable, status: int, message: str) -> None:
    """An answer sent before the body was read: the connection is closed after it, so an unread body
    is never taken for the next request."""
    response = JSONResponse({"error": message, "detail": message}, status_code=status, headers={"Connection": "close"})
    await response({"type": "http"}, None, send)


def check_cost(texts: list[str], k: int, rerank: bool, settings: ServeSettings, depth: int | None = None) -> None:
    """Refuse, before any work, a request over the cost budget (413) or the re-ranking limits (422, 413).
    Cost = the sum over the queries of (characters + depth): encoding grows with the characters, the
    doc-store reads and the answer with how deep the server ranks, ``depth`` (k unless a mode ranks deeper,
    as hybrid does with ``max(k, hybrid_depth)`` per side)."""
    deep = max(k, depth or 0)
    cost = sum(len(text) + deep for text in texts)
    if cost > settings.max_cost:
        raise HTTPException(
            413,
            f"request too costly: cost {cost} > max_cost {settings.max_cost} (cost = sum over queries of "
            f"characters + ranking depth: k, or max(k, hybrid_depth) in hybrid mode); "
            f"send fewer or shorter queries or a smaller k, in several requests if needed",
        )
    if rerank and k > settings.max_rerank_depth:
        raise HTTPException(
            422,
            f"invalid request: k: with rerank, k must be <= max_rerank_depth {settings.max_rerank_depth}; "
            f"ask for k <= {settings.max_rerank_depth}",
        )
    if rerank and len(texts) * k > settings.max_rerank_pairs:
        raise HTTPException(
            413,
            f"too much to re-rank: {len(texts)} queries x k={k} = {len(texts) * k} > max_rerank_pairs "
            f"{settings.max_rerank_pairs}; send fewer queries per request or a smaller k",
        )


def _looks_like_path(text: str) -> bool:
    if text.startswith(("/", "~", "./", "../", "file:", "\\\\")) or re.match(r"[A-Za-z]:[\\/]", text):
        return True
    return ("/" in text or "\\" in text) and os.path.exists(text)


_PATH_IN_TEXT = re.compile(r"(?<![\w.-])(?:~|\.{1,2})?/[^\s'\"(),;]+")


def scrub_text(text: str) -> str:
    """``text`` with each local path in it cut to ``<...>/`` and its last part (for error messages)."""

    def cut(match: re.Match[str]) -> str:
        path = match.group(0).rstrip(":.")
        tail = match.group(0)[len(path) :]
        return "<...>/" + path.rstrip("/").rsplit("/", 1)[-1] + tail

    return _PATH_IN_TEXT.sub(cut, text)


def scrub_paths(value: Any) -> Any:
    """``value`` with every string that names a local file or folder replaced by ``"(local path)"``
    (absolute paths, ``~``/``./`` paths, and relative ones that exist here); hub ids stay."""
    if isinstance(value, dict):
        return {key: scrub_paths(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_paths(item) for item in value]
    if isinstance(value, str) and _looks_like_path(value):
        return "(local path)"
    return value
