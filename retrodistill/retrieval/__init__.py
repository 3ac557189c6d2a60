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
RETRIEVERS.register("index", "retrodistill.index.retriever:IndexDirRetriever", "an index directory: index:PATH")
RETRIEVERS.register("server", "retrodistill.serve.client:ServerRetriever", "a running server: server:URL")

RERANKERS = Registry("re-ranker")
RERANKERS.register("dense", "retrodistill.retrieval.rerank:BiEncoderReranker", "bi-encoder inner product")
RERANKERS.register("colbert", "retrodistill.retrieval.rerank:ColBERTReranker", "ColBERT student, exact MaxSim")
RERANKERS.register("cross-encoder", "retrodistill.teachers.rerank:CrossEncoderReranker", "a CrossEncoder teacher")
RERANKERS.register("llm", "retrodistill.teachers.rerank:LLMReranker", "an LLM teacher (mode=ql|yesno|prp|listwise)")
