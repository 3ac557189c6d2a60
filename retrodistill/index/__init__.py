"""Vector indexes over student embeddings: one registry, exact ``flat`` (FAISS) and ``numpy`` (oracle)."""

from __future__ import annotations

from retrodistill.registry import Registry

INDEX_TYPES = Registry("index type")
INDEX_TYPES.register("flat", "retrodistill.index.flat:FaissFlatIndex", "exact inner product, FAISS IndexFlatIP")
INDEX_TYPES.register("numpy", "retrodistill.index.numpy_flat:NumpyFlatIndex", "exact, chunked numpy (oracle)")
