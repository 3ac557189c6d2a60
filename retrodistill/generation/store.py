"""The on-disk store of generated queries: one SQLite file per generation config, resumable, duplicate-free.

Every attempt (source passage, sample index) is one row, written with its whole batch in one
transaction, so a run killed at any point keeps every finished batch and nothing half. An attempt
whose normalised text repeats a query already kept (or is empty) is stored as dropped, so a resumed
run neither writes it again nor re-generates it. The ``meta`` table records the generation spec (model
id + revision, template name + hash, seed, sampling); opening the file with another spec is a
ConfigError and leaves it untouched. The file is created on the first write.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from retrodistill import __version__
from retrodistill.errors import ConfigError, DataError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    doc_id TEXT NOT NULL, sample INTEGER NOT NULL, seq INTEGER NOT NULL, text TEXT NOT NULL,
    norm TEXT NOT NULL, status TEXT NOT NULL, PRIMARY KEY (doc_id, sample)
);
"""


@dataclass(frozen=True)
class GenerationSpec:
    """Everything that changes the generated text of an attempt (passage, sample index)."""

    model: str
    revision: str
    gguf_file: str | None
    template: str
    template_hash: str
    seed: int
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"{self.model} template {self.template} ({self.template_hash}) seed {self.seed} [{self.fingerprint()}]"


@dataclass(frozen=True, slots=True)
class GeneratedQuery:
    """A kept pseudo-query with its provenance: the source passage, the sample index and the spec."""

    query_id: str
    doc_id: str
    text: str
    sample: int
    model: str
    revision: str
    template: str
    template_hash: str
    seed: int


def query_id(doc_id: str, sample: int) -> str:
    return f"{doc_id}-q{sample}"


def normalise(text: str) -> str:
    """Lower case, words only: two queries equal under this are duplicates."""
    return " ".join(re.findall(r"\w+", text.lower()))


def read_generation_spec(path: str | os.PathLike[str]) -> GenerationSpec:
    path = Path(path)
    if not path.is_file():
        raise DataError("query store not found; run `retrodistill generate` first", str(path))
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'spec'").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"not a retrodistill query store ({exc})", str(path)) from None
    if row is None:
        raise DataError("not a retrodistill query store (no generation spec recorded)", str(path))
    return GenerationSpec(**json.loads(row[0]))


class QueryStore:
    """Generated queries on disk. ``QueryStore(path, spec)`` checks an existing file; ``open(path)`` reads one."""

    def __init__(self, path: str | os.PathLike[str], spec: GenerationSpec) -> None:
        self.path = Path(path)
        if self.path.is_file():
            recorded = read_generation_spec(self.path)
            if recorded.fingerprint() != spec.fingerprint():
                raise ConfigError(
                    f"{self.path} holds queries of another generation config: {recorded.describe()}, not "
                    f"{spec.describe()}; use a new --out path for this config"
                )
        self.spec = spec
        self._con: sqlite3.Connection | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> QueryStore:
        return cls(path, read_generation_spec(path))

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._con is None and (create or self.path.is_file()):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(self.path)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            with self._con:
                self._con.executescript(_SCHEMA)
                meta = {"spec": json.dumps(self.spec.to_dict(), sort_keys=True), "fingerprint": self.spec.fingerprint()}
                meta["created_by"] = f"retrodistill {__version__}"
                self._con.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", meta.items())
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> QueryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def done(self) -> set[tuple[str, int]]:
        """Every (doc id, sample) already attempted, kept or dropped."""
        con = self._connect(create=False)
        return set() if con is None else {(d, int(s)) for d, s in con.execute("SELECT doc_id, sample FROM attempts")}

    def add(self, attempts: Sequence[tuple[str, int, str]]) -> dict[str, int]:
        """Store (doc id, sample, text) attempts in one transaction, in order; returns counts by status.

        Status ``kept``; ``duplicate`` when the normalised text equals a kept query's (earlier in this
        batch included); ``empty`` when nothing is left after normalising. Attempts already stored are skipped.
        """
        con = self._connect(create=True)
        counts = {"kept": 0, "duplicate": 0, "empty": 0}
        with con:
            seq = con.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM attempts").fetchone()[0]
            for doc_id, sample, text in attempts:
                if con.execute("SELECT 1 FROM attempts WHERE doc_id = ? AND sample = ?", (doc_id, sample)).fetchone():
                    continue
                norm = normalise(text)
                if not norm:
                    status = "empty"
                elif con.execute("SELECT 1 FROM attempts WHERE norm = ? AND status = 'kept'", (norm,)).fetchone():
                    status = "duplicate"
                else:
                    status = "kept"
                con.execute(
                    "INSERT INTO attempts(doc_id, sample, seq, text, norm, status) VALUES (?, ?, ?, ?, ?, ?)",
                    (doc_id, sample, seq, text, norm, status),
                )
                seq += 1
                counts[status] += 1
        return counts

    def counts(self) -> dict[str, int]:
        """Attempts by status (``kept``, ``duplicate``, ``empty``)."""
        con = self._connect(create=False)
        out = {"kept": 0, "duplicate": 0, "empty": 0}
        if con is not None:
            out.update(dict(con.execute("SELECT status, COUNT(*) FROM attempts GROUP BY status").fetchall()))
        return out

    def queries(self) -> list[GeneratedQuery]:
        """Kept queries in the order they were written."""
        con = self._connect(create=False)
        if con is None:
            return []
        s = self.spec
        rows = con.execute("SELECT doc_id, sample, text FROM attempts WHERE status = 'kept' ORDER BY seq")
        return [
            GeneratedQuery(query_id(d, int(n)), d, t, int(n), s.model, s.revision, s.template, s.template_hash, s.seed)
            for d, n, t in rows
        ]
