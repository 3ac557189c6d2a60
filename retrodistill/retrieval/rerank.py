"""Re-ranking candidate lists with a bi-encoder (the student-side re-ranker)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from retrodistill.data.records import Document, Query, Run
from retrodistill.students.bi_encoder import BiEncoder


class BiEncoderReranker:
    """Scores each (query, candidate) pair by the inner product of their embeddings.

    ``rerank`` encodes every distinct candidate passage once, then scores per query; the output
    run holds the new scores (cosine when normalised, higher = more relevant) for the top
    ``depth`` candidates of each list (all when ``depth`` is None); candidates below ``depth``
    keep their first-stage order beneath them.
    """

    name = "dense-rerank"

    def __init__(self, model: str, batch_size: int = 64, normalize: bool = True, max_seq_length: int | None = None):
        self.encoder = BiEncoder(model, batch_size=batch_size, normalize=normalize, max_seq_length=max_seq_length)

    def rerank(
        self,
        queries: Mapping[str, Query],
        candidates: Run,
        corpus: Mapping[str, Document],
        depth: int | None = None,
        show_progress: bool = True,
    ) -> Run:
        ranked = {qid: _ranked(docs) for qid, docs in candidates.items() if qid in queries}
        lists = {qid: ids if depth is None else ids[:depth] for qid, ids in ranked.items()}
        doc_ids = sorted({did for ids in lists.values() for did in ids})
        row = {did: i for i, did in enumerate(doc_ids)}
        passages = self.encoder.encode_passages([corpus[d].full_text() for d in doc_ids], show_progress=show_progress)
        qids = list(lists)
        query_vecs = self.encoder.encode_queries([queries[q].text for q in qids])
        run: Run = {}
        for qid, qvec in zip(qids, query_vecs, strict=True):
            ids = lists[qid]
            scores = passages[[row[d] for d in ids]] @ qvec
            run[qid] = {d: float(s) for d, s in zip(ids, np.asarray(scores), strict=True)}
            floor = min(run[qid].values(), default=0.0)
            for offset, did in enumerate(ranked[qid][len(ids) :], start=1):
                run[qid][did] = floor - offset
        return run


def _ranked(docs: Mapping[str, float]) -> list[str]:
    return sorted(docs, key=lambda d: (-docs[d], d))
