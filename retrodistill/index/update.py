"""Updates to a built index directory without a rebuild: add documents, delete documents.

``add_documents`` encodes only the new documents (resumable through the embedding cache, as a build
is) and appends them as new rows: IVF / IVF-PQ keep their trained cells, HNSW links the new vectors
into its graph, a ColBERT index appends the new token vectors to its store and token index.
``delete_documents`` turns rows into tombstones (``null`` in ids.json, gone from the doc store);
searches skip them, so a flat index answers exactly as a fresh build of the remaining documents in the
same order. The index file is not rewritten by a delete.

Each update writes a new directory beside the old one and swaps it into place, so a reader sees the
old or the new state, never a mix; updates of one directory are serialised by a lock file. The
manifest's ``corpus`` records the live size, the tombstones and every update.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrodistill import __version__
from retrodistill.atomic import atomic_open
from retrodistill.data.records import Document
from retrodistill.errors import DataError
from retrodistill.index.encode import encode_corpus, encode_corpus_tokens
from retrodistill.index.folder import building
from retrodistill.index.manifest import HashingWriter, file_entry, write_manifest
from retrodistill.index.store import DOCS, IDS, IndexDir, load_index_dir

SHOWN = 5


class DocumentsExist(DataError):
    """Some doc ids to add are already live in the index (HTTP 409)."""


class UnknownDocuments(DataError):
    """Some doc ids to delete are not in the index (HTTP 404)."""


def add_documents(
    path: str | os.PathLike[str],
    encoder: Any,
    docs: Sequence[Document],
    cache_dir: str | os.PathLike[str] | None = None,
    shard_size: int = 256,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Encode ``docs`` with ``encoder`` (the index's model: checked) and append them to the index
    directory ``path``. DataError, with nothing written, when a doc id is already live in the index,
    repeats, or a document has no text. Returns the update record written to the manifest."""
    folder = Path(path).absolute()
    with _update_lock(folder):
        store = load_index_dir(folder, device="cpu", mmap=False)
        store.check_encoder(encoder)
        _check_new(store, docs)
        started = time.perf_counter()
        encode = encode_corpus_tokens if store.kind == "colbert" else encode_corpus
        vectors = encode(encoder, list(docs), cache_dir, shard_size=shard_size, show_progress=show_progress)
        store.index.add(vectors)
        first_row = len(store.ids)
        ids = [*store.ids, *(d.doc_id for d in docs)]

        def docs_edit(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO docs VALUES (?, ?, ?, ?)",
                ((first_row + i, d.doc_id, d.title, d.text) for i, d in enumerate(docs)),
            )

        record = _record("add", [d.doc_id for d in docs], started)
        _write(store, ids, docs_edit, record, rewrite_index=True)
    return record


def delete_documents(path: str | os.PathLike[str], doc_ids: Sequence[str]) -> dict[str, Any]:
    """Delete ``doc_ids`` from the index directory ``path`` (tombstones; the vectors stay in the
    index file, skipped by searches). DataError, with nothing written, for an id not in the index,
    a repeated id, or a delete that would leave the index empty."""
    folder = Path(path).absolute()
    with _update_lock(folder):
        store = load_index_dir(folder, device="cpu")
        rows = {doc_id: row for row, doc_id in enumerate(store.ids) if doc_id is not None}
        if not doc_ids:
            raise DataError("no doc ids to delete; give at least one")
        repeated = sorted(d for d, n in Counter(doc_ids).items() if n > 1)
        if repeated:
            raise DataError(f"doc ids given twice: {_some(repeated)}; give each once", str(folder))
        unknown = [d for d in doc_ids if d not in rows]
        if unknown:
            raise UnknownDocuments(
                f"{len(unknown)} doc id(s) not in the index: {_some(unknown)}; nothing was deleted "
                f"(list what is there with retrodistill index info)",
                str(folder),
            )
        if len(doc_ids) == len(rows):
            raise DataError("this would delete every document; build a new index instead", str(folder))
        started = time.perf_counter()
        gone = {rows[d] for d in doc_ids}
        ids = [None if row in gone else doc_id for row, doc_id in enumerate(store.ids)]

        def docs_edit(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM docs WHERE row = ?", ((row,) for row in sorted(gone)))

        record = _record("delete", list(doc_ids), started)
        _write(store, ids, docs_edit, record, rewrite_index=False)
    return record


def _check_new(store: IndexDir, docs: Sequence[Document]) -> None:
    where = str(store.path)
    if not docs:
        raise DataError("no documents to add; the corpus given is empty", where)
    empty = [d.doc_id for d in docs if not d.full_text().strip()]
    if empty:
        raise DataError(f"{len(empty)} document(s) have no title or text: {_some(empty)}; drop or fill them", where)
    repeated = sorted(d for d, n in Counter(d.doc_id for d in docs).items() if n > 1)
    if repeated:
        raise DataError(f"doc ids repeat in the documents to add: {_some(repeated)}; give each once", where)
    live = {doc_id for doc_id in store.ids if doc_id is not None}
    present = [d.doc_id for d in docs if d.doc_id in live]
    if present:
        raise DocumentsExist(
            f"{len(present)} doc id(s) already in the index: {_some(present)}; nothing was added "
            f"(to replace a document, delete it first: retrodistill index delete)",
            where,
        )


def _record(op: str, doc_ids: list[str], started: float) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps([op, doc_ids]).encode()).hexdigest()[:16]
    return {
        "op": op,
        "documents": len(doc_ids),
        "ids_sha256": digest,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 3),
        "retrodistill_version": __version__,
    }


def _write(store: IndexDir, ids: list[str | None], docs_edit: Any, record: dict[str, Any], rewrite_index: bool) -> None:
    """Write the updated directory into a temp folder beside ``store.path`` and swap it into place."""
    out = store.path.absolute()
    manifest = json.loads(json.dumps(store.manifest))
    manifest.pop("checksum", None)
    index_name = manifest["index"]["file"]
    with building(out) as tmp:
        if rewrite_index:
            with atomic_open(tmp / index_name, "wb") as handle:
                writer = HashingWriter(handle)
                store.index.write(writer)
            manifest["files"]["index"] = writer.entry(index_name)
        else:
            _link_or_copy(out / index_name, tmp / index_name)
        with atomic_open(tmp / IDS, "wb") as handle:
            ids_writer = HashingWriter(handle)
            ids_writer.write((json.dumps(ids) + "\n").encode("utf-8"))
        manifest["files"]["ids"] = ids_writer.entry(IDS)
        shutil.copyfile(out / DOCS, tmp / DOCS)
        conn = sqlite3.connect(tmp / DOCS)
        try:
            docs_edit(conn)
            conn.commit()
        finally:
            conn.close()
        manifest["files"]["docs"] = file_entry(tmp, DOCS)
        live = sum(doc_id is not None for doc_id in ids)
        size = manifest["files"]["index"]["bytes"]
        manifest["index"].update(ntotal=len(ids), bytes=size, bytes_per_vector=round(size / len(ids), 2))
        if "tokens" in manifest["index"]:
            manifest["index"]["tokens"] = int(store.index.ntokens)
        corpus = manifest["corpus"]
        corpus["key"] = hashlib.sha256(f"{corpus['key']}:{record['ids_sha256']}".encode()).hexdigest()[:24]
        corpus.update(size=live, deleted=len(ids) - live, updates=[*corpus.get("updates", []), record])
        write_manifest(tmp, manifest)


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (files of an index directory are never changed in place), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


@contextmanager
def _update_lock(folder: Path) -> Iterator[None]:
    """One update at a time per index directory (a lock file beside it, held for the update)."""
    if not folder.is_dir():
        raise DataError("index directory not found; build it first (retrodistill index build)", str(folder))
    lock = folder.parent / f".{folder.name}.update.lock"
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _some(values: Sequence[str]) -> str:
    shown = ", ".join(repr(v) for v in values[:SHOWN])
    return shown + (f" and {len(values) - SHOWN} more" if len(values) > SHOWN else "")
