"""The FastAPI app: ``create_app(settings)`` builds it; nothing is loaded at import.

Endpoints: ``POST /search``, ``GET /health`` (liveness), ``GET /ready`` (503 until the index and model
are loaded), ``GET /metrics`` (Prometheus), ``GET /info`` (the index manifest), ``GET /`` (a search
page), and FastAPI's ``/docs`` and ``/openapi.json``. Every error is a JSON body
``{"error": message, "detail": ...}`` with a 4xx status for bad input.

This module does not use ``from __future__ import annotations``: FastAPI reads endpoint annotations
at run time, and the request model is built per app from the settings' limits (so /openapi.json
documents them).
"""

import asyncio
import hmac
import logging
import os
import re
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.exceptions import HTTPException

from retrodistill import __version__
from retrodistill.serve.batching import MicroBatcher
from retrodistill.serve.metrics import Metrics
from retrodistill.serve.settings import ServeSettings

log = logging.getLogger("retrodistill.serve")


class BodyTooLarge(HTTPException):
    """Raised while reading a body past the limit; an HTTPException so FastAPI passes it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class ErrorResponse(BaseModel):
    error: str = Field(description="what is wrong, in one line")
    detail: Any = Field(None, description="validation details, when there are any")


class Hit(BaseModel):
    rank: int = Field(description="1-based position")
    doc_id: str
    score: float = Field(description="ranking score: cross-encoder output when re-ranked, else retrieval_score")
    retrieval_score: float = Field(description="inner product of query and document embeddings (cosine)")
    title: str
    snippet: str


class QueryResult(BaseModel):
    query: str
    hits: list[Hit]


class SearchResponse(BaseModel):
    results: list[QueryResult] = Field(description="one entry per query, in request order")
    k: int
    reranked: bool
    latency_ms: float = Field(description="time spent in the server on this request")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready, loading or failed")
    error: str | None = None


def _request_model(settings: ServeSettings) -> type[BaseModel]:
    query_text = Annotated[
        str, StringConstraints(min_length=1, max_length=settings.max_query_chars, pattern=r"\S", strict=True)
    ]

    class SearchRequest(BaseModel):
        """Give ``query`` (one string) or ``queries`` (a list); ``k`` results per query."""

        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"query": "how do vaccines work", "k": 10}]},
        )

        query: query_text | None = Field(None, description="one query (not blank)")
        queries: list[query_text] | None = Field(
            None, min_length=1, description=f"several queries, at most {settings.max_queries} (else 413)"
        )
        k: int = Field(settings.default_k, ge=1, le=settings.max_k, strict=True, description="results per query")
        rerank: bool = Field(
            False, strict=True, description="re-rank the top k with the server's cross-encoder (400 if none)"
        )

        @model_validator(mode="after")
        def _one_of(self) -> "SearchRequest":
            if (self.query is None) == (self.queries is None):
                raise ValueError("give exactly one of 'query' or 'queries'")
            return self

    return SearchRequest


class _State:
    def __init__(self, settings: ServeSettings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.service: Any = None
        self.batcher: MicroBatcher | None = None
        self.error: str | None = None

    async def attach(self, service: Any) -> None:
        batcher = MicroBatcher(
            service.search_batch, self.settings.max_batch, self.settings.max_wait_ms, self.metrics.observe_batch
        )
        await batcher.start()
        self.batcher, self.service = batcher, service
        self.metrics.ready.set(1)
        self.metrics.index_size.set(len(service.store.ids))

    async def load(self, loader: Callable[[ServeSettings], Any]) -> None:
        try:
            service = await asyncio.to_thread(loader, self.settings)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("loading failed: %s", self.error)
            return
        await self.attach(service)


class BodyTimeout(HTTPException):
    """Raised when a body is not received within the deadline; the answer closes the connection."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408, f"request body not received within {seconds:g} s; send the whole body at once", {"Connection": "close"}
        )


KEY_HEADER = b"x-api-key"
KEYED_ROUTES = {("POST", "/search")}


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


class _Guard:
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
            await _json(send_wrapper, 401, KEY_MESSAGE)
        elif too_big:
            await _json(send_wrapper, 413, f"request body larger than {self.limit} bytes")
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
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
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


async def _json(send: Callable, status: int, message: str) -> None:
    response = JSONResponse({"error": message, "detail": message}, status_code=status)
    await response({"type": "http"}, None, send)


def _error(status: int, message: str, detail: Any = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail or message}, status_code=status, headers=headers)


def create_app(
    settings: ServeSettings, service: Any = None, loader: Callable[[ServeSettings], Any] | None = None
) -> FastAPI:
    """The app for ``settings``. With ``service`` (a loaded SearchService) it is ready at once;
    otherwise ``loader(settings)`` (default: SearchService) runs in a thread after start-up and
    /ready answers 503 until it is done (or for good, with the error, if it failed)."""
    from retrodistill.serve.page import PAGE

    metrics = Metrics()
    state = _State(settings, metrics)
    SearchRequest = _request_model(settings)
    errors = {code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 503)}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = None
        if service is not None:
            await state.attach(service)
        else:
            if loader is None:
                from retrodistill.serve.service import SearchService

                task = asyncio.create_task(state.load(SearchService))
            else:
                task = asyncio.create_task(state.load(loader))
        yield
        if task is not None and not task.done():
            task.cancel()
        if state.batcher is not None:
            await state.batcher.stop()

    app = FastAPI(
        title="retrodistill search",
        version=__version__,
        description="Dense retrieval over a FAISS index directory built by `retrodistill index build`.",
        lifespan=lifespan,
    )
    app.state.retrodistill = state
    app.add_middleware(_Guard, settings=settings, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(p for p in first["loc"] if p != "body") or "body"
        return _error(422, f"invalid request: {where}: {first['msg']}", details)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return _error(500, "internal server error")

    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="needed when the server has a key")

    def check_key(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> None:
        if settings.api_key is not None and key_status(request.scope, settings) != "ok":
            raise HTTPException(401, KEY_MESSAGE)

    def ready_service() -> Any:
        if state.service is None:
            raise HTTPException(503, "the index and model are still loading" if state.error is None else state.error)
        return state.service

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/health", response_model=Health, summary="liveness")
    async def health() -> Health:
        return Health(status="ok")

    @app.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}}, summary="readiness")
    async def ready() -> Any:
        if state.service is not None:
            return Readiness(status="ready")
        body = Readiness(status="loading" if state.error is None else "failed", error=state.error)
        return JSONResponse(body.model_dump(), status_code=503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/info",
        summary="the index manifest and server limits (paths and the full configuration only with the key)",
        responses={401: errors[401], 503: errors[503]},
    )
    async def info(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> dict[str, Any]:
        svc = ready_service()
        status = key_status(request.scope, settings)
        if status == "bad":
            raise HTTPException(401, KEY_MESSAGE)
        if status == "ok":
            return {**svc.manifest, "server": {**settings.public(), **settings.limits()}}
        return {**scrub_paths(svc.manifest), "server": settings.limits()}

    @app.post(
        "/search",
        response_model=SearchResponse,
        responses=errors,
        summary="top-k documents for one or more queries",
        dependencies=[Depends(check_key)],
    )
    async def search(body: SearchRequest) -> SearchResponse:  # type: ignore[valid-type]
        start = time.perf_counter()
        svc = ready_service()
        texts = [body.query] if body.query is not None else list(body.queries)
        if len(texts) > settings.max_queries:
            raise HTTPException(413, f"too many queries: {len(texts)} > {settings.max_queries} per request")
        if body.rerank and svc.reranker is None:
            raise HTTPException(400, "re-ranking is not enabled on this server; start it with --reranker MODEL")
        check_cost(texts, body.k, body.rerank, settings)
        hits = await state.batcher.submit([(text, body.k) for text in texts])
        if body.rerank:
            rows = [await asyncio.to_thread(svc.results, h, t) for h, t in zip(hits, texts, strict=True)]
        else:
            rows = [svc.results(h) for h in hits]
        results = [
            QueryResult(query=t, hits=[Hit(**asdict(r)) for r in row]) for t, row in zip(texts, rows, strict=True)
        ]
        latency = 1000 * (time.perf_counter() - start)
        return SearchResponse(results=results, k=body.k, reranked=body.rerank, latency_ms=round(latency, 3))

    return app


def check_cost(texts: list[str], k: int, rerank: bool, settings: ServeSettings) -> None:
    """Refuse, before any work, a request over the cost budget (413) or the re-ranking limits (422, 413).
    Cost = the sum over the queries of (characters + k): encoding grows with the characters, the
    doc-store reads and the answer with k."""
    cost = sum(len(text) + k for text in texts)
    if cost > settings.max_cost:
        raise HTTPException(
            413,
            f"request too costly: cost {cost} > max_cost {settings.max_cost} (cost = sum over queries of "
            f"characters + k); send fewer or shorter queries or a smaller k, in several requests if needed",
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


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory retrodistill.serve.app:app_from_env`` with RETRODISTILL_INDEX_DIR etc. set."""
    return create_app(ServeSettings.from_env())
