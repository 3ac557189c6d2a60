"""Score fusion shared by eval and the server: a re-ranker interpolated with its first stage (Birch-style
hybrid re-ranking), and two full rankings fused per query (:func:`fuse`, the ``hybrid:MODEL`` retriever and
``POST /search`` with ``mode: "hybrid"``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from retrodistill.data.records import Dataset, Run
from retrodistill.errors import ConfigError

METHODS = ("rrf", "zscore")


def fuse(
    lexical: Mapping[str, float],
    dense: Mapping[str, float],
    method: str = "rrf",
    weight: float = 0.5,
    rrf_k: int = 60,
) -> list[tuple[str, float]]:
    """Two rankings of one query (doc id -> score, higher = better) fused into one, best first.

    Each input is ranked by score, ties by doc id. ``method="rrf"``: reciprocal rank fusion, the sum over
    both lists of ``1 / (rrf_k + rank)`` (rank 1-based; Cormack et al., SIGIR 2009); a document missing from
    a list gets nothing from it. ``method="zscore"``: ``weight * z(dense) + (1 - weight) * z(lexical)``, each
    list standardised over the documents it holds (mean 0, standard deviation 1, a constant list all
    zeros); a document missing from one list takes that list's minimum z. The output holds every document
    of either list, its scores unitless, sorted by fused score then doc id; callers cut it to their k.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown hybrid method {method!r}; choose {' or '.join(METHODS)}")
    lists = [_ranked(lexical), _ranked(dense)]
    fused: dict[str, float] = {}
    if method == "rrf":
        for hits in lists:
            for rank, (doc_id, _) in enumerate(hits, start=1):
                fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (rrf_k + rank)
    else:
        parts = [(1.0 - weight, _z(lists[0])), (weight, _z(lists[1]))]
        ids = {d for _, z in parts for d in z}
        for part_weight, z in parts:
            floor = min(z.values(), default=0.0)
            for doc_id in ids:
                fused[doc_id] = fused.get(doc_id, 0.0) + part_weight * z.get(doc_id, floor)
    return _ranked(fused)


def interpolate(reranked: Run, first_stage: Run, weight: float, depth: int | None = None) -> Run:
    """``weight * z(re-ranker) + (1 - weight) * z(first stage)`` over each query's re-ranked candidates.

    ``first_stage`` is the candidate run the re-ranker was given, ``reranked`` its output for the top
    ``depth`` candidates (all when None). Both score lists are z-normalised per query over exactly those
    candidates (mean 0, standard deviation 1; a constant list becomes all zeros) so that logits, BM25
    scores and cosines can be mixed. ``weight=1`` keeps the re-ranker's order, ``weight=0`` the first
    stage's. Candidates below ``depth`` keep their first-stage order beneath the mixed scores.
    Output scores are unitless (higher = more relevant). This is the interpolation of a cross-domain
    BERT re-ranker with BM25 in Yilmaz et al., "Cross-Domain Modeling of Sentence-Level Evidence for
    Document Retrieval" (Birch, EMNLP 2019); tune ``weight`` on held-out queries, not on the test set.
    """
    from retrodistill.retrieval.rerank import with_tail

    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"interpolate={weight} is outside [0, 1]; 0 = first stage only, 1 = re-ranker only")
    fused: Run = {}
    for qid, first in first_stage.items():
        if qid not in reranked:
            continue
        ranked = sorted(first, key=lambda d: (-first[d], d))
        top = ranked if depth is None else ranked[:depth]
        new = reranked[qid]
        missing = [d for d in top if d not in new]
        if missing:
            raise ValueError(f"query {qid}: the re-ranked run lacks {len(missing)} of its top-{len(top)} candidates")
        mixed = weight * _zscore([new[d] for d in top]) + (1.0 - weight) * _zscore([first[d] for d in top])
        fused[qid] = with_tail({d: float(s) for d, s in zip(top, mixed, strict=True)}, ranked)
    return fused


def interpolate_with_bm25(run: Run, dataset: Dataset, weight: float) -> Run:
    """``run`` (a teacher's stored scores) mixed with bm25s over exactly its candidates, as :func:`interpolate`.

    BM25 ranks the whole corpus for the run's queries, so a candidate BM25 does not match scores 0.
    """
    from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever

    bm25 = BM25sRetriever()
    bm25.index(dataset.corpus)
    queries = [dataset.queries[q] for q in run if q in dataset.queries]
    ranked = bm25.retrieve(queries, len(dataset.corpus), show_progress=False)
    first = {q: {d: ranked.get(q, {}).get(d, 0.0) for d in docs} for q, docs in run.items() if q in dataset.queries}
    return interpolate(run, first, weight)


def _zscore(values: list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return array
    spread = array.std()
    if spread == 0.0:
        return np.zeros_like(array)
    return (array - array.mean()) / spread


def _ranked(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _z(hits: list[tuple[str, float]]) -> dict[str, float]:
    z = _zscore([s for _, s in hits])
    return {doc_id: float(v) for (doc_id, _), v in zip(hits, z, strict=True)}
