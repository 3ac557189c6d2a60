"""A ColBERT student as an index encoder: the same interface as ``BiEncoder`` (model id, revision,
fingerprint, settings), but queries and passages become token-vector matrices, not single vectors."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from retrodistill.errors import ConfigError
from retrodistill.revision import model_revision
from retrodistill.students.colbert import CONFIG_NAME, ColBERT, is_colbert_model


class ColBERTEncoder:
    """Encodes with a saved ColBERT student folder (``retrodistill train --student colbert``).

    ``encode_queries`` returns float32 (n, query_maxlen, dim); ``encode_passages`` one float32
    (tokens, dim) array per passage. Token vectors are unit-length; a query-passage score is MaxSim,
    in [-query_maxlen, query_maxlen], higher = more relevant.
    """

    multi_vector = True
    normalize = True
    query_prefix = ""
    passage_prefix = ""

    def __init__(
        self, model: str, batch_size: int = 32, device: str | None = None, doc_maxlen: int | None = None
    ) -> None:
        if not is_colbert_model(model):
            raise ConfigError(
                f"{model!r} is not a ColBERT student folder (no {CONFIG_NAME}); train one with "
                "retrodistill train --student colbert, or index a bi-encoder with --index flat"
            )
        import torch

        self.model = ColBERT.load(model)
        if doc_maxlen:
            self.model.config_dict["doc_maxlen"] = int(doc_maxlen)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.model_id = model
        self.batch_size = int(batch_size)
        self._revision: str | None = None

    def settings(self) -> dict[str, object]:
        """The constructor arguments of an equal encoder (``ColBERTEncoder(**settings())``)."""
        return {
            "model": self.model_id,
            "batch_size": self.batch_size,
            "device": self.device,
            "doc_maxlen": self.max_seq_length,
        }

    @property
    def revision(self) -> str:
        """A content hash of the folder's weights (backbone and projection)."""
        if self._revision is None:
            self._revision = model_revision(self.model_id)
        return self._revision

    @property
    def dim(self) -> int:
        return self.model.dim

    @property
    def max_seq_length(self) -> int:
        return int(self.model.config_dict["doc_maxlen"])

    def fingerprint(self) -> str:
        """Identifies the weights and the encoding settings (for caches and manifests)."""
        config = self.model.config_dict
        key = f"colbert|{self.revision}|{config['query_maxlen']}|{config['doc_maxlen']}|{config['dim']}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def encode_queries(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self.model.encode_queries(list(texts), batch_size=self.batch_size)

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> list[np.ndarray]:
        return self.model.encode_passages(list(texts), batch_size=self.batch_size)
