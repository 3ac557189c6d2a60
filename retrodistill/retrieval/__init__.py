"""First-stage retrieval and re-ranking. Names in RETRIEVERS are what ``--system`` accepts."""

from __future__ import annotations

from retrodistill.registry import Registry

RETRIEVERS = Registry("retriever")
RETRIEVERS.register("bm25s", "retrodistill.retrieval.bm25s_bm25:BM25sRetriever", "BM25 with bm25s (default)")
RETRIEVERS.register(
    "pyserini", "retrodistill.retrieval.pyserini_bm25:PyseriniBM25", "Lucene BM25, pip install 'retrodistill[pyserini]'"
)
RETRIEVERS.register(
    "dense", "retrodistill.retrieval.dense:DenseRetriever", "a sentence-transformers model, exact or FAISS search"
)

RERANKERS = Registry("re-ranker")
RERANKERS.register("dense", "retrodistill.retrieval.rerank:BiEncoderReranker", "bi-encoder inner product")
