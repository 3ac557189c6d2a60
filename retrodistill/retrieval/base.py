"""The first-stage retriever interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from tqdm.auto import tqdm

from retrodistill.data.records import Document, Query, Run


class Retriever(ABC):
    """Indexes a corpus once, then returns the top-k documents per query.

    ``retrieve`` does the bookkeeping (batching, progress, run assembly); subclasses implement
    ``_index`` and ``_search``. Scores are the backend's own (BM25 or inner product): higher is
    more relevant; they are comparable within one query only.
    """

    name: str = "retriever"
    batch_size: int = 256

    def __init__(self) -> None:
        self._indexed = False

    def index(self, corpus: Mapping[str, Document]) -> None:
        """Build the index over ``corpus`` (doc id -> document)."""
        if not corpus:
            raise ValueError("cannot index an empty corpus")
        self._index(list(corpus.values()))
        self._indexed = True

    def retrieve(self, queries: Sequence[Query], k: int = 100, show_progress: bool = True) -> Run:
        """Top-``k`` documents for each query as ``run[qid][docid] = score``."""
        if not self._indexed:
            raise RuntimeError(f"{self.name}: call index(corpus) before retrieve()")
        run: Run = {}
        bar = tqdm(total=len(queries), desc=f"{self.name} search", unit="q", disable=not show_progress)
        for start in range(0, len(queries), self.batch_size):
            batch = queries[start : start + self.batch_size]
            hits = self._search([q.text for q in batch], k)
            for query, query_hits in zip(batch, hits, strict=True):
                run[query.query_id] = {doc_id: float(score) for doc_id, score in query_hits}
            bar.update(len(batch))
        bar.close()
        return run

    @abstractmethod
    def _index(self, docs: list[Document]) -> None: ...

    @abstractmethod
    def _search(self, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        """For each query text, up to ``k`` (doc id, score) pairs, best first."""
