"""rank_llm candidate lists (``retrieve_results_*.json[.gz]``): queries, hits and passage text."""

from __future__ import annotations

import json
import os
from pathlib import Path

from retrodistill.data.checks import build_dataset
from retrodistill.data.records import Dataset, Document, Query, Run
from retrodistill.data.textfile import read_text
from retrodistill.data.trec import read_qrels, read_queries_tsv
from retrodistill.errors import DataError


def read_rankllm_candidates(path: str | os.PathLike[str]) -> tuple[Run, dict[str, Document], dict[str, Query]]:
    """Parse ``[{"query", "hits": [{"content", "qid", "docid", "rank", "score"}]}]``.

    Returns the first-stage run (its own scores), the passages and the query texts.
    """
    path = Path(path)
    try:
        entries = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg})", str(path), exc.lineno) from None
    if not isinstance(entries, list):
        raise DataError("expected a JSON list of {query, hits}", str(path))
    run: Run = {}
    docs: dict[str, Document] = {}
    queries: dict[str, Query] = {}
    for position, entry in enumerate(entries):
        try:
            hits = entry["hits"]
            text = entry["query"]
            for hit in hits:
                qid, docid = str(hit["qid"]), str(hit["docid"])
                run.setdefault(qid, {})[docid] = float(hit["score"])
                docs.setdefault(docid, Document(docid, hit["content"]))
                queries.setdefault(qid, Query(qid, text))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"entry {position} is not a rank_llm candidate list ({exc!r})", str(path)) from None
    if not run:
        raise DataError("no candidates found", str(path))
    return run, docs, queries


def task_name(qrels_path: str | os.PathLike[str], candidates_path: str | os.PathLike[str]) -> str:
    """The dataset a task names, not a path: ``dl19`` for rank_llm's ``retrieve_results_dl19.json.gz``,
    else the qrels file's name without its extension (``2019qrels-pass``)."""
    stem = Path(candidates_path).name.split(".")[0]
    if stem.startswith("retrieve_results_") and stem != "retrieve_results_":
        return stem.removeprefix("retrieve_results_")
    return Path(qrels_path).name.split(".")[0]


def load_rerank_task(
    qrels_path: str | os.PathLike[str],
    candidates_path: str | os.PathLike[str],
    queries_path: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> Dataset:
    """A re-ranking task: judged queries, their candidate lists and the candidates' text.

    Query texts come from ``queries_path`` (TSV) when given, else from the candidate file.
    Only judged queries that have candidates are kept.
    """
    run, docs, queries = read_rankllm_candidates(candidates_path)
    if queries_path is not None:
        queries.update(read_queries_tsv(queries_path))
    qrels = read_qrels(qrels_path)
    qrels = {qid: judged for qid, judged in qrels.items() if qid in run}
    if not qrels:
        raise DataError("no judged query has candidates; do these qrels match the candidate file?", str(qrels_path))
    run = {qid: run[qid] for qid in qrels}
    return build_dataset(
        name or task_name(qrels_path, candidates_path),
        docs,
        queries,
        qrels,
        candidates=run,
        source=str(candidates_path),
    )
