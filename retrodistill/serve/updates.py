"""``POST /documents`` and ``POST /documents/delete``: ``index add`` / ``index delete`` while serving.

Enabled by ``--updates`` (settings.updates), always behind the API key. Updates run one at a time in a
worker thread while searches go on; each writes the index directory atomically
(``retrodistill.index.update``) and the service then swaps in the new state. Errors: a doc id already in
the index 409, an unknown doc id 404, other bad documents 422, updates not enabled 400.

Like ``app``, this module does not use ``from __future__ import annotations`` (FastAPI reads the
annotations at run time).
"""

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException

from retrodistill.data.records import Document
from retrodistill.errors import ConfigError, DataError
from retrodistill.index.update import DocumentsExist, UnknownDocuments
from retrodistill.serve.guard import scrub_text
from retrodistill.serve.settings import ServeSettings

DocId = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"\S", strict=True)]


class NewDocument(BaseModel):
    """One document to add, as a BEIR corpus line: ``_id`` (or ``id``), ``title``, ``text``."""

    model_config = ConfigDict(extra="forbid")

    id: DocId = Field(validation_alias=AliasChoices("_id", "id"), description="doc id (not in the index yet)")
    title: str = ""
    text: str = ""


class UpdateResult(BaseModel):
    op: str = Field(description="add or delete")
    documents: int = Field(description="documents added or deleted")
    size: int = Field(description="live documents now")
    deleted: int = Field(description="deleted rows the index keeps as tombstones (skipped by search)")
    seconds: float = Field(description="encoding and indexing time of the update")


def add_update_routes(
    app: Any,
    settings: ServeSettings,
    ready_service: Callable[[], Any],
    check_key: Callable,
    on_change: Callable,
    error_model: type[BaseModel],
) -> None:
    """Mount the two endpoints on ``app``; ``on_change(service)`` runs after each update (metrics)."""
    router = APIRouter()
    lock = asyncio.Lock()
    limit = settings.max_update_docs

    class AddRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        documents: list[NewDocument] = Field(min_length=1, max_length=limit, description=f"at most {limit}")

    class DeleteRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        ids: list[DocId] = Field(min_length=1, max_length=limit, description=f"doc ids, at most {limit}")

    async def run(method: str, payload: list[Any]) -> UpdateResult:
        if not settings.updates:
            raise HTTPException(400, "updates are not enabled on this server; start it with --updates (and an API key)")
        svc = ready_service()
        async with lock:
            try:
                record = await asyncio.to_thread(getattr(svc, method), payload)
            except DocumentsExist as exc:
                raise HTTPException(409, scrub_text(str(exc))) from None
            except UnknownDocuments as exc:
                raise HTTPException(404, scrub_text(str(exc))) from None
            except (DataError, ConfigError) as exc:
                raise HTTPException(422, scrub_text(str(exc))) from None
        on_change(svc)
        corpus = svc.manifest["corpus"]
        return UpdateResult(
            op=record["op"],
            documents=record["documents"],
            size=corpus["size"],
            deleted=corpus["deleted"],
            seconds=record["seconds"],
        )

    errors = {code: {"model": error_model} for code in (400, 401, 404, 409, 413, 422, 503)}

    @router.post(
        "/documents",
        response_model=UpdateResult,
        responses=errors,
        dependencies=[Depends(check_key)],
        summary="add documents to the served index (encoded by the served model)",
    )
    async def add(body: AddRequest) -> UpdateResult:  # type: ignore[valid-type]
        docs = [Document(d.id, d.text, d.title) for d in body.documents]  # type: ignore[attr-defined]
        return await run("add_documents", docs)

    @router.post(
        "/documents/delete",
        response_model=UpdateResult,
        responses=errors,
        dependencies=[Depends(check_key)],
        summary="delete documents from the served index by doc id",
    )
    async def delete(body: DeleteRequest) -> UpdateResult:  # type: ignore[valid-type]
        return await run("delete_documents", list(body.ids))  # type: ignore[attr-defined]

    app.include_router(router)
