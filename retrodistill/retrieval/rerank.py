"""Re-ranking candidate lists with a bi-encoder (the student-side re-ranker)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from retrodistill.data.records import Document, Query, Run
from retrodistill.errors import require
from retrodistill.students.bi_encoder import BiEncoder


class BiEncoderReranker:
    """Scores each (query, candidate) pair by the inner product of their embeddings.

    ``rerank`` encodes every distinct candidate passage once, then scores per query; the output
    run holds the new scores (cosine when normalised, higher = more relevant) for the top
    ``depth`` candidates of each list (all when ``depth`` is None); candidates below ``depth``
    keep their first-stage order beneath them. When the candidates cover at least half of the corpus
    (BM25's top 100 of a small corpus), the whole corpus is encoded through the embedding cache that
    dense retrieval shares (``index.encode``, under ``cache_dir``), so a corpus already encoded costs nothing.
    """

    name = "dense-rerank"

    def __init__(
        self,
        model: str,
        batch_size: int = 64,
        normalize: bool = True,
        max_seq_length: int | None = None,
        cache_dir: str | None = None,
    ):
        self.encoder = BiEncoder(model, batch_size=batch_size, normalize=normalize, max_seq_length=max_seq_length)
        self.cache_dir = cache_dir

    def rerank(
        self,
        queries: Mapping[str, Query],
        candidates: Run,
        corpus: Mapping[str, Document],
        depth: int | None = None,
        show_progress: bool = True,
    ) -> Run:
        ranked, lists = rank_lists(queries, candidates, depth)
        doc_ids = sorted({did for ids in lists.values() for did in ids})
        row = {did: i for i, did in enumerate(doc_ids)}
        if len(doc_ids) * 2 >= len(corpus):
            from retrodistill.index.encode import encode_corpus

            docs = list(corpus.values())
            vectors = encode_corpus(self.encoder, docs, self.cache_dir, show_progress=show_progress)
            at = {doc.doc_id: i for i, doc in enumerate(docs)}
            passages = vectors[[at[d] for d in doc_ids]]
        else:
            passages = self._encode_passages([corpus[d].full_text() for d in doc_ids], show_progress)
        qids = list(lists)
        query_vecs = self.encoder.encode_queries([queries[q].text for q in qids])
        run: Run = {}
        for qid, qvec in zip(qids, query_vecs, strict=True):
            ids = lists[qid]
            scores = passages[[row[d] for d in ids]] @ qvec
            run[qid] = with_tail({d: float(s) for d, s in zip(ids, np.asarray(scores), strict=True)}, ranked[qid])
        return run

    def _encode_passages(self, texts: list[str], show_progress: bool) -> np.ndarray:
        """Embeddings of ``texts`` in order, encoded longest first in chunks under one named progress bar."""
        from tqdm.auto import tqdm

        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
        chunk = 16 * self.encoder.batch_size
        desc = "dense re-rank: encode candidates"
        with tqdm(total=len(texts), desc=desc, unit="doc", disable=not show_progress) as bar:
            for start in range(0, len(texts), chunk):
                rows = order[start : start + chunk]
                out[rows] = self.encoder.encode_passages([texts[r] for r in rows])
                bar.update(len(rows))
        return out


def rank_lists(
    queries: Mapping[str, Query], candidates: Run, depth: int | None
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per query: all candidates best first, and the top ``depth`` of them to re-rank."""
    ranked = {qid: sorted(docs, key=lambda d: (-docs[d], d)) for qid, docs in candidates.items() if qid in queries}
    return ranked, {qid: ids if depth is None else ids[:depth] for qid, ids in ranked.items()}


def with_tail(scores: dict[str, float], ranked: list[str]) -> dict[str, float]:
    """Append the candidates that were not re-ranked, in first-stage order, below the lowest new score."""
    floor = min(scores.values(), default=0.0)
    tail = [d for d in ranked if d not in scores]
    return scores | {did: floor - offset for offset, did in enumerate(tail, start=1)}


class ColBERTReranker:
    """Exact MaxSim re-ranking of candidate lists with a ColBERT student folder (the served ColBERT path).

    Scores are MaxSim sums over query tokens (higher = more relevant); candidates below ``depth``
    keep their first-stage order beneath the re-ranked ones.
    """

    name = "colbert-rerank"

    def __init__(self, model: str, batch_size: int = 32, seed: int = 0, dim: int = 128, init: str = "random") -> None:
        """``seed``, ``dim`` and ``init`` make the projection when ``model`` is a backbone rather than a ColBERT
        folder (training starts from the student's ``seed``, ``colbert_dim`` and ``colbert_init``)."""
        require("torch", purpose="ColBERT re-ranking")
        from retrodistill.students.colbert import ColBERT

        self.model = ColBERT.load(model, seed=seed, dim=dim, init=init).eval()
        self.batch_size = batch_size

    def rerank(
        self,
        queries: Mapping[str, Query],
        candidates: Run,
        corpus: Mapping[str, Document],
        depth: int | None = None,
        show_progress: bool = True,
    ) -> Run:
        from retrodistill.students.colbert import maxsim_numpy

        ranked, lists = rank_lists(queries, candidates, depth)
        doc_ids = sorted({did for ids in lists.values() for did in ids})
        vectors = self.model.encode_passages([corpus[d].full_text() for d in doc_ids], self.batch_size)
        by_id = dict(zip(doc_ids, vectors, strict=True))
        qids = list(lists)
        query_vecs = self.model.encode_queries([queries[q].text for q in qids])
        run: Run = {}
        for qid, qvec in zip(qids, query_vecs, strict=True):
            run[qid] = with_tail({d: maxsim_numpy(qvec, by_id[d]) for d in lists[qid]}, ranked[qid])
        return run
