"""First-stage retrieval and student re-ranking.

RETRIEVERS are what ``--system`` accepts in retrieval mode and what ``--candidates`` names; RERANKERS are
the student-side re-rankers. Teachers re-rank too: ``retrodistill.eval.systems`` joins the two lists.
"""

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
RETRIEVERS.register(
    "hybrid", "retrodistill.retrieval.hybrid:HybridRetriever", "bm25s + dense:MODEL fused (method=rrf|zscore)"
)
RETRIEVERS.register("index", "retrodistill.retrieval.index_dir:IndexDirRetriever", "an index directory: index:PATH")
RETRIEVERS.register("server", "retrodistill.retrieval.server:ServerRetriever", "a running server: server:URL")

RERANKERS = Registry("re-ranker")
RERANKERS.register("dense", "retrodistill.retrieval.rerank:BiEncoderReranker", "bi-encoder inner product")
RERANKERS.register("colbert", "retrodistill.retrieval.rerank:ColBERTReranker", "ColBERT student, exact MaxSim")
