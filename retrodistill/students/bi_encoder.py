"""A bi-encoder over any sentence-transformers model id or folder."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from retrodistill.errors import ConfigError, require
from retrodistill.revision import model_revision


class BiEncoder:
    """Embeds queries and passages with one sentence-transformers model.

    ``encode_queries`` and ``encode_passages`` return float32 arrays of shape (n, dim). With
    ``normalize=True`` (default) rows are unit-length, so inner product = cosine similarity,
    in [-1, 1], higher = more relevant. ``query_prefix`` / ``passage_prefix`` are prepended to
    texts for models trained with instructions (e5: "query: ", "passage: ").
    """

    def __init__(
        self,
        model: str,
        batch_size: int = 64,
        normalize: bool = True,
        max_seq_length: int | None = None,
        device: str | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
    ) -> None:
        SentenceTransformer = require("sentence_transformers", purpose="bi-encoder models").SentenceTransformer

        try:
            self.model = SentenceTransformer(model, device=device)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"cannot load sentence-transformers model {model!r} ({first}); check the id or path, "
                "and HF_HUB_CACHE / HF_HUB_OFFLINE when offline"
            ) from None
        if max_seq_length:
            self.model.max_seq_length = int(max_seq_length)
        self.model_id = model
        self.device = device
        self.batch_size = int(batch_size)
        self.normalize = normalize
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self._revision: str | None = None

    def settings(self) -> dict[str, object]:
        """The constructor arguments of an equal encoder (``BiEncoder(**settings())``, e.g. in a worker)."""
        return {
            "model": self.model_id,
            "batch_size": self.batch_size,
            "normalize": self.normalize,
            "max_seq_length": int(self.model.max_seq_length),
            "device": self.device,
            "query_prefix": self.query_prefix,
            "passage_prefix": self.passage_prefix,
        }

    @property
    def revision(self) -> str:
        """The hub commit, or a content hash of a local model folder's weights."""
        if self._revision is None:
            self._revision = model_revision(self.model_id)
        return self._revision

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def fingerprint(self) -> str:
        """Identifies the weights and the encoding settings (for caches and manifests)."""
        revision = self.revision
        key = "|".join(
            map(
                str,
                (revision, self.normalize, self.model.max_seq_length, self.query_prefix, self.passage_prefix),
            )
        )
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def encode_queries(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self._encode([self.query_prefix + t for t in texts], show_progress)

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self._encode([self.passage_prefix + t for t in texts], show_progress)

    def _encode(self, texts: list[str], show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
