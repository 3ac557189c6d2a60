"""Vector indexes over student embeddings: one registry, exact ``flat`` (FAISS) and ``numpy`` (oracle),
approximate ``hnsw``, ``ivf`` and ``ivfpq``, ``qdrant`` (a vector database collection), and for the token
vectors of a ColBERT model (late interaction) ``colbert`` and ``qdrant-colbert`` (a multi-vector collection)."""

from __future__ import annotations

from retrodistill.registry import Registry

INDEX_TYPES = Registry("index type")
INDEX_TYPES.register("flat", "retrodistill.index.flat:FaissFlatIndex", "exact inner product, FAISS IndexFlatIP")
INDEX_TYPES.register("numpy", "retrodistill.index.numpy_flat:NumpyFlatIndex", "exact, chunked numpy (oracle)")
INDEX_TYPES.register("hnsw", "retrodistill.index.hnsw:HNSWIndex", "HNSW graph (M, efConstruction, efSearch)")
INDEX_TYPES.register("ivf", "retrodistill.index.ivf:IVFIndex", "inverted file, full vectors (nlist, nprobe)")
INDEX_TYPES.register("ivfpq", "retrodistill.index.ivfpq:IVFPQIndex", "inverted file + PQ codes (nlist, nprobe, m)")
INDEX_TYPES.register(
    "qdrant", "retrodistill.index.qdrant:QdrantIndex", "a Qdrant collection: url= a server or cluster, else in-process"
)
INDEX_TYPES.register(
    "colbert",
    "retrodistill.index.multivector:MultiVectorIndex",
    "ColBERT token vectors: FAISS token candidates + exact MaxSim (ncandidates, nlist, nprobe, pool_factor)",
)
INDEX_TYPES.register(
    "qdrant-colbert",
    "retrodistill.index.qdrant_colbert:QdrantMultiVectorIndex",
    "ColBERT token vectors in a Qdrant multi-vector collection, MaxSim in the database (url=, exact=, pool_factor)",
)
MULTI_VECTOR_TYPES = ("colbert", "qdrant-colbert")
