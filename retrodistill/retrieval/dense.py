"""Dense retrieval: a bi-encoder's corpus embeddings in a vector index, searched exactly or approximately."""

from __future__ import annotations

from retrodistill.data.records import Document
from retrodistill.index import INDEX_TYPES
from retrodistill.index.base import VectorIndex
from retrodistill.index.encode import encode_corpus
from retrodistill.retrieval.base import Retriever
from retrodistill.students.bi_encoder import BiEncoder


class DenseRetriever(Retriever):
    """Any sentence-transformers model id or folder; scores are inner products of the embeddings
    (cosine when normalised, the default), higher = more relevant. ``backend`` is the encoder's engine
    (``inference.backends``: torch, onnx, openvino, openvino-bf16, onnx-int8, auto)."""

    name = "dense"

    def __init__(
        self,
        model: str,
        index: str = "flat",
        batch_size: int = 64,
        normalize: bool = True,
        max_seq_length: int | None = None,
        cache_dir: str | None = None,
        query_chunk: int = 256,
        show_progress: bool = True,
        backend: str = "torch",
    ) -> None:
        super().__init__()
        self.index_type = index
        self._index_cls = INDEX_TYPES.get(index)
        self.encoder = BiEncoder(
            model, batch_size=batch_size, normalize=normalize, max_seq_length=max_seq_length, backend=backend
        )
        self.cache_dir = cache_dir
        self.query_chunk = query_chunk
        self.show_progress = show_progress
        self._doc_ids: list[str] = []
        self._vectors: VectorIndex | None = None

    def _index(self, docs: list[Document]) -> None:
        embeddings = encode_corpus(self.encoder, docs, self.cache_dir, show_progress=self.show_progress)
        self._doc_ids = [doc.doc_id for doc in docs]
        self._vectors = self._index_cls(self.encoder.dim, query_chunk=self.query_chunk)
        self._vectors.add(embeddings)

    def _search(self, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        queries = self.encoder.encode_queries(texts)
        scores, ids = self._vectors.search(queries, k)
        return [
            [(self._doc_ids[i], float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0]
            for row_s, row_i in zip(scores, ids, strict=True)
        ]
