"""In-training evaluation: re-rank a first stage's top-k for a sample of queries, report nDCG@10."""

from __future__ import annotations

import numpy as np
from sentence_transformers.evaluation import SentenceEvaluator

from retrodistill.data.records import Dataset, Run
from retrodistill.eval.measures import evaluate


class RerankEvaluator(SentenceEvaluator):
    """Cheap enough to run every few hundred steps on CPU: only the candidates of ``max_queries``
    queries are encoded. The primary metric is ``ndcg@10`` of the re-ranked lists (higher is better)."""

    def __init__(self, dataset: Dataset, candidates: Run, max_queries: int | None = 100, name: str = "rerank"):
        super().__init__()
        qids = [q for q in dataset.qrels if q in candidates][: max_queries or None]
        self.qids = qids
        self.queries = [dataset.queries[q].text for q in qids]
        self.lists = {q: list(candidates[q]) for q in qids}
        self.doc_ids = sorted({d for ids in self.lists.values() for d in ids})
        self.texts = [dataset.corpus[d].full_text() for d in self.doc_ids]
        self.qrels = {q: dataset.qrels[q] for q in qids}
        self.name = name
        self.primary_metric = "ndcg@10"
        self.greater_is_better = True

    def __call__(self, model, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        return self.prefix_name_to_metrics({"ndcg@10": self.ndcg(model)}, self.name)

    def ndcg(self, model) -> float:
        docs = np.asarray(model.encode(self.texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True))
        queries = np.asarray(
            model.encode(self.queries, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        )
        row = {d: i for i, d in enumerate(self.doc_ids)}
        run: Run = {}
        for qid, qvec in zip(self.qids, queries, strict=True):
            ids = self.lists[qid]
            scores = docs[[row[d] for d in ids]] @ qvec
            run[qid] = {d: float(s) for d, s in zip(ids, scores, strict=True)}
        return evaluate(run, self.qrels, ["nDCG@10"]).aggregate["nDCG@10"]
