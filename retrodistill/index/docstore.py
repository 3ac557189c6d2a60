"""The doc store of an index directory: ``docs.sqlite``, table docs(row, doc_id, title, text), one row per
live document, for titles and snippets of hits."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from retrodistill.data.records import Document
from retrodistill.errors import DataError
from retrodistill.index.manifest import REBUILD, IndexIntegrityError

DOCS = "docs.sqlite"


class DocStore:
    """Read-only access to docs.sqlite, one connection per thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("doc store not found; rebuild the index directory", str(self.path))
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    def check(self, ids: Sequence[str | None]) -> None:
        """IndexIntegrityError unless the table holds one row per live id, the first and last of them
        at their rows (an SQLite read error is one too)."""
        folder, name = self.path.parent, self.path.name
        live = [row for row, doc_id in enumerate(ids) if doc_id is not None]
        n_rows = len(live)
        try:
            count, low, high = self._connection().execute("SELECT COUNT(*), MIN(row), MAX(row) FROM docs").fetchone()
        except sqlite3.Error as exc:
            raise IndexIntegrityError(folder, f"{name} cannot be read by SQLite ({one_line(exc)}); {REBUILD}") from None
        if (count, low, high) != (n_rows, live[0], live[-1]):
            raise IndexIntegrityError(
                folder, f"{name} does not match its manifest ({count} documents, the index has {n_rows}); {REBUILD}"
            )

    def get(self, rows: Sequence[int]) -> list[Document | None]:
        """The documents at ``rows`` (None for a row not in the store), in the order asked."""
        wanted = sorted({int(r) for r in rows if r >= 0})
        found: dict[int, Document] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            query = f"SELECT row, doc_id, title, text FROM docs WHERE row IN ({marks})"
            for row, doc_id, title, text in self._connection().execute(query, part):
                found[row] = Document(doc_id, text, title)
        return [found.get(int(r)) for r in rows]


def write_doc_store(path: Path, docs: Sequence[Document]) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE docs (row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, title TEXT, text TEXT)")
        conn.executemany(
            "INSERT INTO docs VALUES (?, ?, ?, ?)", ((i, d.doc_id, d.title, d.text) for i, d in enumerate(docs))
        )
        conn.commit()
    finally:
        conn.close()


def one_line(exc: BaseException) -> str:
    """A library's error message on one short line (FAISS's 'Error in ... at file:line:' prefix dropped)."""
    text = "".join(c if c.isprintable() else "?" for c in " ".join(str(exc).split())) or type(exc).__name__
    return re.sub(r"Error in .*? at \S+:\d+: ", "", text)[:200]
