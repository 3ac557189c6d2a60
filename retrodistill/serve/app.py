"""The FastAPI app: ``create_app(settings)`` builds it; nothing is loaded at import.

Endpoints: ``POST /search`` (the student's dense index, or with ``mode: "hybrid"`` BM25 and the student
fused per query, ``retrodistill.serve.hybrid``), ``POST /compare`` (one query through several systems side by side, each
timed: BM25, the student, the re-ranker, the teacher, as the server offers them), ``GET /health``
(liveness), ``GET /ready`` (503 until the index and model are loaded and a probe query went through
every part), ``POST /documents`` and ``POST /documents/delete`` (updates, with ``--updates`` and the key;
``retrodistill.serve.updates``), ``GET /metrics`` (Prometheus), ``GET /info`` (the index manifest and
limits; local paths and the full configuration only with the API key), ``GET /`` (a search page), and
FastAPI's ``/docs`` and ``/openapi.json``. Every error is a JSON body
``{"error": message, "detail": ...}`` with a 4xx status for bad input. The guards that run before any
work (key, body size and deadline, cost) are in ``retrodistill.serve.guard``.

This module does not use ``from __future__ import annotations``: FastAPI reads endpoint annotations
at run time. The wire models are in ``retrodistill.serve.schemas``.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from starlette.exceptions import HTTPException

from retrodistill import __version__
from retrodistill.serve.batching import MicroBatcher
from retrodistill.serve.guard import KEY_MESSAGE, Guard, check_cost, key_status, scrub_paths, scrub_text
from retrodistill.serve.hybrid import hybrid_hits
from retrodistill.serve.metrics import Metrics
from retrodistill.serve.schemas import (
    Column,
    CompareResponse,
    ErrorResponse,
    Health,
    Hit,
    QueryResult,
    Readiness,
    SearchResponse,
    compare_model,
    request_model,
)
from retrodistill.serve.settings import ENABLE, SYSTEMS, ServeSettings
from retrodistill.serve.updates import add_update_routes

log = logging.getLogger("retrodistill.serve")


def _labels(settings: ServeSettings) -> dict[str, str]:
    teacher = (settings.teacher or "").split(":", 1)[0].split(",", 1)[0]
    return {
        "bm25": "BM25 (bm25s)",
        "student": "student (dense index)",
        "reranker": "re-ranker: cross-encoder on the student's top k",
        "teacher": f"teacher: {teacher} on the student's top k",
    }


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
        self.metrics.index_size.set(service.manifest["corpus"]["size"])

    async def load(self, loader: Callable[[ServeSettings], Any]) -> None:
        try:
            service = await asyncio.to_thread(loader, self.settings)
        except Exception as exc:
            log.error("loading failed: %s: %s", type(exc).__name__, exc)
            self.error = scrub_text(f"{type(exc).__name__}: {exc}")
            return
        await self.attach(service)


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
    SearchRequest = request_model(settings)
    CompareRequest = compare_model(settings)
    labels = _labels(settings)
    errors = {code: {"model": ErrorResponse} for code in (400, 401, 408, 413, 422, 503)}

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
    app.add_middleware(Guard, settings=settings, metrics=metrics)

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

    async def check_key(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> None:
        """Async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per request."""
        if settings.api_key is not None and key_status(request.scope, settings) != "ok":
            raise HTTPException(401, KEY_MESSAGE)

    def ready_service() -> Any:
        if state.service is None:
            raise HTTPException(503, "the index and model are still loading" if state.error is None else state.error)
        return state.service

    add_update_routes(
        app,
        settings,
        ready_service,
        check_key,
        lambda svc: metrics.index_size.set(svc.manifest["corpus"]["size"]),
        ErrorResponse,
    )

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
        engine = {
            "backend": str(getattr(svc.encoder, "backend", "torch")),
            "auto_probe_seconds": getattr(svc.encoder, "backend_report", {}) or None,
        }
        if status == "ok":
            return {**svc.manifest, "server": {**settings.public(), **settings.limits()}, "encoder": engine}
        return {**scrub_paths(svc.manifest), "server": settings.limits(), "encoder": engine}

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
        if body.mode == "hybrid" and svc.side.bm25 is None:
            raise HTTPException(400, f"hybrid search is not enabled on this server; start it with {ENABLE['hybrid']}")
        depth = max(body.k, settings.hybrid_depth) if body.mode == "hybrid" else body.k
        check_cost(texts, body.k, body.rerank, settings, depth)
        if body.mode == "hybrid":
            method = body.fusion or settings.hybrid_fusion
            hits = await hybrid_hits(svc, state.batcher.submit, texts, body.k, method, settings)
        else:
            hits = await state.batcher.submit([(text, body.k) for text in texts])
        if body.rerank:
            rows = [await asyncio.to_thread(svc.results, h, t) for h, t in zip(hits, texts, strict=True)]
        else:
            rows = [svc.results(h) for h in hits]
        results = [
            QueryResult(query=t, hits=[Hit.model_validate(r) for r in row]) for t, row in zip(texts, rows, strict=True)
        ]
        latency = 1000 * (time.perf_counter() - start)
        return SearchResponse(results=results, k=body.k, reranked=body.rerank, latency_ms=round(latency, 3))

    def chosen_systems(asked: list[str] | None) -> list[str]:
        offered = settings.systems()
        systems = list(dict.fromkeys(asked or offered))
        for name in systems:
            if name not in SYSTEMS:
                raise HTTPException(
                    400, f"unknown system {name!r}; choose from {', '.join(SYSTEMS)} (here: {', '.join(offered)})"
                )
            if name not in offered:
                raise HTTPException(400, f"system {name!r} is not enabled on this server; start it with {ENABLE[name]}")
        return systems

    @app.post(
        "/compare",
        response_model=CompareResponse,
        responses=errors,
        summary="one query through several systems side by side, each column timed",
        dependencies=[Depends(check_key)],
    )
    async def compare(body: CompareRequest) -> CompareResponse:  # type: ignore[valid-type]
        start = time.perf_counter()
        svc = ready_service()
        systems = chosen_systems(body.systems)
        check_cost([body.query], body.k, bool({"reranker", "teacher"} & set(systems)), settings)
        first: list[Any] = []

        async def student_hits() -> tuple[list[Any], float]:
            if not first:
                began = time.perf_counter()
                hits = (await state.batcher.submit([(body.query, body.k)]))[0]
                first.extend([hits, 1000 * (time.perf_counter() - began)])
            return first[0], first[1]

        columns = []
        for name in systems:
            began, before = time.perf_counter(), 0.0
            if name == "bm25":
                rows = svc.results(await asyncio.to_thread(svc.side.bm25_hits, body.query, body.k))
            elif name == "student":
                hits, before = await student_hits()
                began = time.perf_counter()
                rows = svc.results(hits)
            else:
                hits, before = await student_hits()
                began = time.perf_counter()
                if name == "reranker":
                    rows = await asyncio.to_thread(svc.results, hits, body.query)
                else:
                    scores = await asyncio.to_thread(svc.side.teacher_scores, body.query, hits)
                    rows = svc.results(hits, scores=scores)
            took = before + 1000 * (time.perf_counter() - began)
            hits_out = [Hit.model_validate(r) for r in rows]
            columns.append(Column(system=name, label=labels[name], hits=hits_out, latency_ms=round(took, 3)))
        latency = 1000 * (time.perf_counter() - start)
        return CompareResponse(query=body.query, k=body.k, columns=columns, latency_ms=round(latency, 3))

    return app


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory retrodistill.serve.app:app_from_env`` with RETRODISTILL_INDEX_DIR etc. set.
    uvicorn's own command line then sets the connection limits; add ``--http h11
    --h11-max-incomplete-event-size 16384`` to keep the request-head cap (its httptools has none).
    ``retrodistill serve`` sets all of these itself (``ServeSettings.uvicorn_options``)."""
    return create_app(ServeSettings.from_env())
