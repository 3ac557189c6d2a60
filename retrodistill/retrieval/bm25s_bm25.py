"""BM25 with bm25s, the embedded default first stage."""

from __future__ import annotations

import numpy as np

from retrodistill.data.records import Document
from retrodistill.errors import ConfigError, MissingDependencyError
from retrodistill.retrieval.base import Retriever


class BM25sRetriever(Retriever):
    """Sparse BM25 over title + text with bm25s.

    Defaults: Lucene's BM25 variant, k1=0.9, b=0.4 (Anserini's defaults, as in pyserini's BEIR
    baselines), English stopwords and the Porter stemmer (PyStemmer). ``stemmer=None`` disables
    stemming. Scores are BM25 sums (unbounded, higher = more relevant).
    """

    name = "bm25s"

    def __init__(
        self,
        k1: float = 0.9,
        b: float = 0.4,
        method: str = "lucene",
        stopwords: str | None = "en",
        stemmer: str | None = "porter",
        threads: int = 1,
    ) -> None:
        super().__init__()
        try:
            import bm25s
        except ImportError:
            raise MissingDependencyError("bm25s", purpose="BM25 retrieval") from None
        self._bm25s = bm25s
        self.k1, self.b, self.method = float(k1), float(b), method
        self.stopwords = stopwords
        self.threads = int(threads)
        self._stemmer = None
        if stemmer:
            try:
                import Stemmer
            except ImportError:
                raise MissingDependencyError("PyStemmer", purpose="stemming in bm25s") from None
            try:
                self._stemmer = Stemmer.Stemmer(stemmer)
            except KeyError:
                raise ConfigError(
                    f"unknown stemmer {stemmer!r}; choose one of {', '.join(Stemmer.algorithms())}"
                ) from None
        self._doc_ids: list[str] = []
        self._model = None

    def _tokenize(self, texts: list[str]) -> object:
        return self._bm25s.tokenize(texts, stopwords=self.stopwords, stemmer=self._stemmer, show_progress=False)

    def _index(self, docs: list[Document]) -> None:
        self._doc_ids = [doc.doc_id for doc in docs]
        self._model = self._bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        self._model.index(self._tokenize([doc.full_text() for doc in docs]), show_progress=False)

    @property
    def doc_ids(self) -> list[str]:
        """Indexed doc ids, in the order of :meth:`score_all`'s columns."""
        return list(self._doc_ids)

    def score_all(self, text: str) -> np.ndarray:
        """BM25 scores of ``text`` against every indexed document (float32, index order); 0 where no term matches."""
        if self._model is None:
            raise ConfigError("index a corpus before scoring")
        tokens = self._bm25s.tokenize(
            [text], stopwords=self.stopwords, stemmer=self._stemmer, return_ids=False, show_progress=False
        )[0]
        vocab = self._model.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return np.zeros(len(self._doc_ids), dtype=np.float32)
        return np.asarray(self._model.get_scores(known), dtype=np.float32)

    def _search(self, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        k = min(k, len(self._doc_ids))
        tokens = self._tokenize(texts)
        indices, scores = self._model.retrieve(tokens, k=k, show_progress=False, n_threads=self.threads, sorted=True)
        hits: list[list[tuple[str, float]]] = []
        for row_ids, row_scores in zip(indices, scores, strict=True):
            hits.append([(self._doc_ids[i], float(s)) for i, s in zip(row_ids, row_scores, strict=True) if s > 0])
        return hits
