"""TREC-format files: qrels, TSV queries and run files (read and write)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from retrodistill.atomic import atomic_open
from retrodistill.data.records import Qrels, Query, Run
from retrodistill.data.textfile import iter_lines
from retrodistill.errors import DataError

log = logging.getLogger(__name__)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    for number, raw in iter_lines(path):
        line = raw.rstrip("\r\n")
        if line.strip():
            yield number, line


def read_qrels(path: str | os.PathLike[str]) -> Qrels:
    """Read TREC qrels (``qid iter docid grade``) or BEIR qrels TSV (``qid docid score``, header optional).

    CRLF line endings are accepted. Grades must be integers.
    """
    path = Path(path)
    qrels: Qrels = {}
    columns = 0
    for number, line in _lines(path):
        parts = line.split()
        if number == 1 and len(parts) == 3 and not _is_int(parts[2]):
            continue  # BEIR header: query-id corpus-id score
        if columns == 0 and len(parts) in (3, 4):
            columns = len(parts)
        if len(parts) != columns:
            layout = "qid iter docid grade" if columns == 4 else "qid docid score"
            raise DataError(
                f"expected {columns or '3 or 4'} columns ({layout}) like the first line, got {len(parts)}",
                str(path),
                number,
            )
        qid, docid, grade = (parts[0], parts[2], parts[3]) if columns == 4 else parts
        if not _is_int(grade):
            raise DataError(f"relevance grade {grade!r} is not an integer", str(path), number)
        qrels.setdefault(qid, {})[docid] = int(grade)
    if not qrels:
        raise DataError("no judgements found; is this a qrels file?", str(path))
    return qrels


def read_queries_tsv(path: str | os.PathLike[str]) -> dict[str, Query]:
    """Read ``qid<TAB>text`` lines (MS MARCO / TREC DL topics)."""
    path = Path(path)
    queries: dict[str, Query] = {}
    for number, line in _lines(path):
        qid, sep, text = line.partition("\t")
        if not sep or not text.strip():
            raise DataError("expected 'query_id<TAB>text'", str(path), number)
        queries[qid.strip()] = Query(qid.strip(), text.strip())
    if not queries:
        raise DataError("no queries found", str(path))
    return queries


def read_run(path: str | os.PathLike[str]) -> Run:
    """Read a TREC run (``qid Q0 docid rank score tag``). Scores, not ranks, define the order."""
    path = Path(path)
    run: Run = {}
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 6:
            raise DataError(f"expected 6 columns (qid Q0 docid rank score tag), got {len(parts)}", str(path), number)
        qid, _, docid, _, score, _ = parts
        try:
            run.setdefault(qid, {})[docid] = float(score)
        except ValueError:
            raise DataError(f"score {score!r} is not a number", str(path), number) from None
    if not run:
        raise DataError("no lines found; is this a TREC run file?", str(path))
    return run


def write_run(run: Run, path: str | os.PathLike[str], tag: str = "retrodistill") -> None:
    """Write a TREC run atomically, each query's documents ranked by descending score."""
    tag = tag.replace(" ", "_") or "retrodistill"
    with atomic_open(path) as handle:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda item: (-item[1], item[0]))
            for rank, (docid, score) in enumerate(ranked, start=1):
                handle.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")


def write_qrels(qrels: Qrels, path: str | os.PathLike[str]) -> None:
    with atomic_open(path) as handle:
        for qid, docs in qrels.items():
            for docid, grade in docs.items():
                handle.write(f"{qid} 0 {docid} {grade}\n")


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
