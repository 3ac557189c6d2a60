"""A bi-encoder over any sentence-transformers model id or folder, run by an inference backend."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrodistill.errors import ConfigError, require
from retrodistill.inference.backends import OTHER_VECTORS, check_backend
from retrodistill.inference.buckets import length_batches, take_rows
from retrodistill.revision import model_revision

WINDOW = 4096
"""Texts tokenised together before they are cut into length buckets."""


class BiEncoder:
    """Embeds queries and passages with one sentence-transformers model.

    ``encode_queries`` and ``encode_passages`` return float32 arrays of shape (n, dim). With
    ``normalize=True`` (default) rows are unit-length, so inner product = cosine similarity,
    in [-1, 1], higher = more relevant. ``query_prefix`` / ``passage_prefix`` are prepended to
    texts for models trained with instructions (e5: "query: ", "passage: ").

    Texts are tokenised, sorted by length and run in length buckets of at most ``batch_size``
    (``inference.buckets``), so short texts do not pay for a long one's padding. ``backend`` names the
    engine of the forward pass (``inference.backends``: torch, onnx, openvino, openvino-bf16, onnx-int8,
    or auto, measured on first use); ``threads`` sets the engine's threads (default: torch's).
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
        backend: str = "torch",
        threads: int | None = None,
    ) -> None:
        self.backend = check_backend(backend)
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
        self.threads = threads
        self.backend_report: dict[str, object] = {}
        self._forward: Any = None

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
            "backend": self.backend,
            "threads": self.threads,
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
        if self.backend in OTHER_VECTORS:  # float32 backends agree with torch to 1e-6
            key += "|" + self.backend
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def encode_queries(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self._encode([self.query_prefix + t for t in texts], show_progress)

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return self._encode([self.passage_prefix + t for t in texts], show_progress)

    def forward(self, probe: list[str] | None = None) -> Any:
        """The resolved backend's forward (features -> embeddings); ``auto`` is measured on the first call,
        on ``probe`` (that call's first texts) when given."""
        if self._forward is None:
            from retrodistill.inference.backends import choose_backend, load_backend

            if self.backend == "auto":
                name, self._forward, self.backend_report = choose_backend(
                    self.model, self.revision, self._embed, self.threads, probe
                )
                self.backend = name
            else:
                self._forward = load_backend(self.backend, self.model, self.revision, self.threads)
        return self._forward

    def _encode(self, texts: list[str], show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._embed(self.forward(texts[:16]), texts, show_progress)

    def _embed(self, forward: Any, texts: list[str], show_progress: bool = False) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        pad_id = int(getattr(self.model.tokenizer, "pad_token_id", None) or 0)
        limit = int(self.model.max_seq_length)
        with tqdm(total=len(texts), desc="encode", unit="text", disable=not show_progress) as bar:
            for start in range(0, len(texts), WINDOW):
                features = self.model.preprocess(texts[start : start + WINDOW])
                lengths = features["attention_mask"].sum(1).tolist()
                for members, padded in length_batches(lengths, self.batch_size, limit):
                    part = take_rows(features, members, padded, pad_id, self.model.device)
                    with torch.inference_mode():
                        vectors = forward(part)
                        if self.normalize:
                            vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
                    out[start + np.asarray(members)] = vectors.float().cpu().numpy()
                    bar.update(len(members))
        return out
