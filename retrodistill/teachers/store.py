"""The on-disk score store: one SQLite file per teacher, resumable, duplicate-free.

Rows are keyed by (teacher fingerprint, query id, doc id, doc id b); ``doc id b`` is empty except for
pairwise preferences. A UNIQUE constraint makes re-inserting a key a no-op, and each chunk is one
transaction (WAL journal), so a run killed at any point keeps every finished chunk and nothing half.
The ``meta`` table records the teacher spec (model id + revision, template, granularity, score
semantics); opening the file for a different teacher is a ConfigError and leaves it untouched.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from retrodistill import __version__
from retrodistill.data.records import Qrels, Run
from retrodistill.errors import ConfigError, DataError
from retrodistill.teachers.aggregate import aggregate_preferences
from retrodistill.teachers.records import Preference, ScoredPair, TeacherSpec, TrainingGroup

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    teacher TEXT NOT NULL, qid TEXT NOT NULL, docid TEXT NOT NULL, docid_b TEXT NOT NULL DEFAULT '',
    score REAL NOT NULL, UNIQUE (teacher, qid, docid, docid_b)
);
"""


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection; in a folder we may not write (no room for WAL side files) the file is read as is."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
    except sqlite3.OperationalError:
        con.close()
        if os.access(path.parent, os.W_OK):
            raise
        con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    return con


def read_spec(path: str | os.PathLike[str]) -> TeacherSpec:
    """The teacher spec recorded in an existing store (read-only)."""
    path = Path(path)
    if path.is_dir():
        raise DataError("is a folder, not a score store file; give the store's file path", str(path))
    if not path.is_file():
        raise DataError("score store not found; run `retrodistill teach` first", str(path))
    if not os.access(path, os.R_OK):
        raise DataError("permission denied reading the score store; fix its permissions", str(path))
    try:
        con = _connect_readonly(path)
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'spec'").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"not a retrodistill score store ({exc})", str(path)) from None
    if row is None:
        raise DataError("not a retrodistill score store (no teacher recorded)", str(path))
    try:
        return TeacherSpec(**json.loads(row[0]))
    except (TypeError, ValueError) as exc:
        raise DataError(f"not a retrodistill score store (unreadable teacher record: {exc})", str(path)) from None


def check_writable(path: str | os.PathLike[str]) -> None:
    """A ConfigError naming the path unless the store file (and its folder, for SQLite's side files) can be written."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; --store takes a file path such as {path / 'scores.sqlite'}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the first existing ancestor: the missing folders are created in it
    if not folder.is_dir():
        raise ConfigError(f"cannot create the score store {path}: {folder} is not a folder; choose another --store")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write the score store {path}: the folder {folder} is not writable (SQLite also writes "
            "side files beside the store); choose a --store path in a writable folder or fix its permissions"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(
            f"cannot write the score store {path}: the file is read-only; fix its permissions "
            "(chmod u+w) or copy it to a new --store path"
        )


class ScoreStore:
    """Teacher scores on disk. ``ScoreStore(path, spec)`` creates or reopens; ``ScoreStore.open(path)`` reads."""

    def __init__(self, path: str | os.PathLike[str], spec: TeacherSpec, readonly: bool = False) -> None:
        self.path = Path(path)
        self.spec = spec
        self._fp = spec.fingerprint()
        if readonly:
            if read_spec(self.path).fingerprint() != self._fp:
                raise ConfigError(f"{path} holds scores of another teacher than {spec.describe()}")
            self._con = _connect_readonly(self.path)
            return
        self.check(self.path, spec)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(self.path)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        with self._con:
            self._con.executescript(_SCHEMA)
            meta = {"spec": json.dumps(spec.to_dict(), sort_keys=True), "fingerprint": spec.fingerprint()}
            meta["created_by"] = f"retrodistill {__version__}"
            self._con.executemany("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", meta.items())

    @staticmethod
    def check(path: str | os.PathLike[str], spec: TeacherSpec) -> None:
        """Before any model loads: a one-line error unless ``path`` can take this teacher's scores.

        A ConfigError when ``path`` cannot be written (read-only file or folder) or holds another teacher's
        scores, a DataError when it exists but is not a score store. Nothing is written.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            recorded = read_spec(path)
            if recorded.fingerprint() != spec.fingerprint():
                raise ConfigError(
                    f"{path} holds scores of another teacher: {recorded.describe()}, not {spec.describe()}; "
                    "use a new --store path for this teacher"
                )
        check_writable(path)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ScoreStore:
        """Reopen an existing store read-only with the teacher recorded in it (writing is refused)."""
        return cls(path, read_spec(path), readonly=True)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> ScoreStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, rows: Sequence[ScoredPair | Preference]) -> int:
        """Insert rows in one transaction; keys already present are left as they are. Returns rows added."""
        values = [
            (self._fp, r.qid, r.docid, "", r.score)
            if isinstance(r, ScoredPair)
            else (self._fp, r.qid, r.doc_a, r.doc_b, r.prob)
            for r in rows
        ]
        with self._con:
            before = self._con.total_changes
            self._con.executemany(
                "INSERT INTO scores(teacher, qid, docid, docid_b, score) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                values,
            )
            return self._con.total_changes - before

    def __len__(self) -> int:
        return self._con.execute("SELECT COUNT(*) FROM scores WHERE teacher = ?", (self._fp,)).fetchone()[0]

    def keys(self) -> set[tuple[str, str, str]]:
        """Every stored (qid, docid, docid_b)."""
        rows = self._con.execute("SELECT qid, docid, docid_b FROM scores WHERE teacher = ?", (self._fp,))
        return {tuple(r) for r in rows}

    def _rows(self, qids: Iterable[str] | None) -> list[tuple[str, str, str, float]]:
        sql = "SELECT qid, docid, docid_b, score FROM scores WHERE teacher = ?"
        rows = self._con.execute(sql, (self._fp,)).fetchall()
        if qids is None:
            return rows
        wanted = set(qids)
        return [r for r in rows if r[0] in wanted]

    def scores(self, qids: Iterable[str] | None = None) -> Run:
        """Pointwise / listwise scores as a run (pairwise rows are left out)."""
        run: Run = {}
        for qid, docid, docid_b, score in self._rows(qids):
            if not docid_b:
                run.setdefault(qid, {})[docid] = score
        return run

    def preferences(self, qids: Iterable[str] | None = None) -> dict[str, dict[tuple[str, str], float]]:
        """Pairwise rows: qid -> {(doc a, doc b): P(a wins with a shown first)}."""
        prefs: dict[str, dict[tuple[str, str], float]] = {}
        for qid, docid, docid_b, score in self._rows(qids):
            if docid_b:
                prefs.setdefault(qid, {})[(docid, docid_b)] = score
        return prefs

    def complete_queries(self, candidates: Mapping[str, Sequence[str]]) -> set[str]:
        """Queries all of whose candidates have a (non-pairwise) score."""
        run = self.scores(list(candidates))
        return {q for q, ids in candidates.items() if q in run and all(d in run[q] for d in ids)}

    def run(self) -> Run:
        """The teacher's ranking as a run: scores, or aggregated win probabilities for a pairwise teacher."""
        if self.spec.granularity != "pairwise":
            return self.scores()
        run: Run = {}
        for qid, prefs in self.preferences().items():
            ids = list(dict.fromkeys(d for pair in prefs for d in pair))
            run[qid] = aggregate_preferences(ids, prefs)
        return run

    def training_groups(self, qrels: Qrels, min_grade: int = 1) -> list[TrainingGroup]:
        """Per query: judged positives (grade >= ``min_grade``), candidates and their teacher scores, best first."""
        groups = []
        for qid, docs in self.run().items():
            ranked = sorted(docs, key=lambda d: (-docs[d], d))
            judged = qrels.get(qid, {})
            positives = tuple(d for d, g in judged.items() if g >= min_grade)
            groups.append(TrainingGroup(qid, positives, tuple(ranked), tuple(docs[d] for d in ranked)))
        return groups
