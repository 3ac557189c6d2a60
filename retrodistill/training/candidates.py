"""What ``teach`` scores: a dataset's judged queries and their candidate lists from one or more sources."""

from __future__ import annotations

from collections.abc import Sequence

from retrodistill.data.records import Dataset
from retrodistill.errors import ConfigError, DataError
from retrodistill.retrieval.first_stage import first_stage


def check_teach_data(
    dataset: str | None, split: str, qrels: str | None, queries: str | None, candidates: Sequence[str] | None
) -> None:
    """What ``load_teach_data`` and ``gather_candidates`` would reject, checked without reading any data."""
    from pathlib import Path

    from retrodistill.data.load import check_dataset
    from retrodistill.retrieval.first_stage import check_source

    sources = list(candidates or [])
    if dataset:
        check_dataset(dataset, split)
    elif not (qrels and sources):
        raise ConfigError("give --dataset, or --qrels with --candidates (a rank_llm JSON)")
    else:
        if not Path(sources[0]).is_file():
            raise DataError("rank_llm candidates file not found", sources[0])
        sources = sources[1:]
    for path, what in ((qrels, "qrels"), (queries, "queries")):
        if path and not Path(path).is_file():
            raise DataError(f"{what} file not found", path)
    for source in sources:
        check_source(source)


def load_teach_data(
    dataset: str | None, split: str, qrels: str | None, queries: str | None, candidates: Sequence[str] | None
) -> tuple[Dataset, list[str]]:
    """The dataset and the remaining candidate sources (a rank_llm JSON becomes the dataset itself)."""
    sources = list(candidates or [])
    if dataset:
        from retrodistill.data.load import load_dataset

        return load_dataset(dataset, split, qrels), sources or ["bm25s"]
    if not (qrels and sources):
        raise ConfigError("give --dataset, or --qrels with --candidates (a rank_llm JSON)")
    from retrodistill.data.rankllm import load_rerank_task

    return load_rerank_task(qrels, sources[0], queries), sources[1:]


def gather_candidates(
    data: Dataset,
    sources: Sequence[str],
    depth: int,
    force_positives: bool = False,
    max_queries: int | None = None,
    show_progress: bool = True,
) -> dict[str, list[str]]:
    """Per judged query, up to ``depth`` doc ids best first.

    Several sources are fused by reciprocal rank (k=60), which also fixes the order pairwise and
    listwise teachers start from. ``force_positives`` appends judged positives that are missing.
    """
    queries = data.judged_queries()[:max_queries] if max_queries else data.judged_queries()
    runs = [data.candidates] if data.candidates is not None else []
    for source in sources:
        runs.append(first_stage(source, data, depth, show_progress))
    if not runs:
        raise ConfigError("no candidate source; give --candidates bm25s, dense:MODEL or a run file")
    lists: dict[str, list[str]] = {}
    for query in queries:
        fused: dict[str, float] = {}
        for run in runs:
            docs = run.get(query.query_id, {})
            for rank, d in enumerate(sorted(docs, key=lambda d: (-docs[d], d))[:depth], start=1):
                fused[d] = fused.get(d, 0.0) + 1.0 / (60 + rank)
        ids = sorted(fused, key=lambda d: (-fused[d], d))[:depth]
        if force_positives:
            ids += [d for d, g in data.qrels.get(query.query_id, {}).items() if g > 0 and d not in ids]
        if ids:
            lists[query.query_id] = ids
    if not lists:
        raise DataError("no query has candidates; check the dataset split and the candidate source")
    return lists
