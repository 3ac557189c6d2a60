"""A ColBERT-style late-interaction student: token embeddings, a linear projection, MaxSim scoring.

Starts from any BERT-like encoder (default all-MiniLM-L6-v2; no ColBERT checkpoint is available
offline). As in ColBERT (Khattab & Zaharia, SIGIR 2020): a query marker ``[unused0]`` and a document
marker ``[unused1]`` follow ``[CLS]``; queries are padded with ``[MASK]`` to ``query_maxlen``
(query augmentation) and attend to those masks; every token vector is projected to ``dim`` and
L2-normalised; document punctuation-only tokens are kept (simpler; the original drops them).
Score(q, d) = sum over query tokens of the max inner product with any document token (MaxSim),
in [-query_maxlen, query_maxlen]; higher = more relevant.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from retrodistill.errors import ConfigError, require

CONFIG_NAME = "colbert_config.json"
PROJECTION_NAME = "colbert_projection.safetensors"


def is_colbert_model(path: str | Path) -> bool:
    """Whether ``path`` is a saved ColBERT student folder (it holds ``colbert_config.json``)."""
    return (Path(path) / CONFIG_NAME).is_file()


def check_projection(backbone: str, dim: int, init: str) -> None:
    """A ConfigError, before any weights load, when an identity projection cannot fit ``backbone`` (its
    config's hidden size is read; a backbone whose config cannot be read is left to the model load)."""
    if init != "identity":
        return
    from transformers import AutoConfig

    try:
        hidden = AutoConfig.from_pretrained(backbone).hidden_size
    except (OSError, ValueError, AttributeError):
        return
    if dim != hidden:
        raise ConfigError(
            f"colbert_init identity needs colbert_dim = {backbone}'s hidden size {hidden}, not {dim}; "
            f"set colbert_dim {hidden} or colbert_init random"
        )


class ColBERT(nn.Module):
    def __init__(
        self,
        backbone: str = "sentence-transformers/all-MiniLM-L6-v2",
        dim: int = 128,
        query_maxlen: int = 32,
        doc_maxlen: int = 180,
        query_marker: str = "[unused0]",
        doc_marker: str = "[unused1]",
        seed: int = 0,
        init: str = "random",
    ) -> None:
        """A backbone plus a fresh ``dim``-d projection: ``init="random"`` draws it from ``seed`` (the same seed,
        the same weights, nn.Linear's own init); ``"identity"`` keeps the backbone's token vectors as they are
        (``dim`` must then equal its hidden size)."""
        super().__init__()
        require("transformers", purpose="ColBERT models")
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(backbone)
        self.encoder = AutoModel.from_pretrained(backbone)
        hidden = self.encoder.config.hidden_size
        self.projection = nn.Linear(hidden, dim, bias=False)
        if init == "identity":
            if dim != hidden:
                raise ConfigError(f"an identity projection needs dim = the backbone's hidden size {hidden}, not {dim}")
            with torch.no_grad():
                self.projection.weight.copy_(torch.eye(hidden))
        elif init == "random":
            generator = torch.Generator().manual_seed(seed)
            nn.init.kaiming_uniform_(self.projection.weight, a=math.sqrt(5), generator=generator)
        else:
            raise ConfigError(f"projection init must be random or identity, not {init!r}")
        self.config_dict = {
            "backbone": backbone,
            "dim": dim,
            "query_maxlen": query_maxlen,
            "doc_maxlen": doc_maxlen,
            "query_marker": query_marker,
            "doc_marker": doc_marker,
        }
        self.query_marker_id = self.tokenizer.convert_tokens_to_ids(query_marker)
        self.doc_marker_id = self.tokenizer.convert_tokens_to_ids(doc_marker)

    @property
    def dim(self) -> int:
        return int(self.config_dict["dim"])

    def tokenize(self, texts: list[str], is_query: bool) -> dict[str, torch.Tensor]:
        """Token ids with the marker after [CLS]; queries padded with [MASK] to query_maxlen."""
        maxlen = self.config_dict["query_maxlen"] if is_query else self.config_dict["doc_maxlen"]
        batch = self.tokenizer(
            texts,
            padding="max_length" if is_query else "longest",
            truncation=True,
            max_length=maxlen - 1,
            return_tensors="pt",
        )
        ids, mask = batch["input_ids"], batch["attention_mask"]
        marker = torch.full((ids.shape[0], 1), self.query_marker_id if is_query else self.doc_marker_id)
        ids = torch.cat([ids[:, :1], marker, ids[:, 1:]], dim=1)
        mask = torch.cat([mask[:, :1], torch.ones_like(marker), mask[:, 1:]], dim=1)
        if is_query:
            ids = ids.masked_fill(ids == self.tokenizer.pad_token_id, self.tokenizer.mask_token_id)
            mask = torch.ones_like(mask)
        return {"input_ids": ids, "attention_mask": mask}

    def forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(token vectors (n, L, dim) L2-normalised, mask (n, L)) for tokenised input."""
        device = self.projection.weight.device
        features = {k: v.to(device) for k, v in features.items()}
        hidden = self.encoder(**features).last_hidden_state
        vectors = nn.functional.normalize(self.projection(hidden), dim=-1)
        mask = features["attention_mask"].bool()
        return vectors * mask.unsqueeze(-1), mask

    @torch.no_grad()
    def encode_queries(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """float32 (n, query_maxlen, dim): every query has exactly query_maxlen vectors."""
        return self._encode(texts, batch_size, is_query=True)

    @torch.no_grad()
    def encode_passages(self, texts: list[str], batch_size: int = 32) -> list[np.ndarray]:
        """One float32 (tokens, dim) array per passage, padding removed."""
        out: list[np.ndarray] = []
        order = np.argsort([-len(t) for t in texts], kind="stable")
        by_pos: dict[int, np.ndarray] = {}
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            vectors, mask = self(self.tokenize([texts[i] for i in rows], is_query=False))
            for row, vec, m in zip(rows, vectors.cpu().numpy(), mask.cpu().numpy(), strict=True):
                by_pos[int(row)] = np.ascontiguousarray(vec[m], dtype=np.float32)
        out = [by_pos[i] for i in range(len(texts))]
        return out

    def _encode(self, texts: list[str], batch_size: int, is_query: bool) -> np.ndarray:
        chunks = []
        for start in range(0, len(texts), batch_size):
            vectors, _ = self(self.tokenize(texts[start : start + batch_size], is_query))
            chunks.append(vectors.cpu().numpy().astype(np.float32))
        return (
            np.concatenate(chunks) if chunks else np.zeros((0, self.config_dict["query_maxlen"], self.dim), np.float32)
        )

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        save_file({"weight": self.projection.weight.detach().cpu().contiguous()}, str(folder / PROJECTION_NAME))
        (folder / CONFIG_NAME).write_text(json.dumps(self.config_dict, indent=2))

    @classmethod
    def load(
        cls, folder: str | Path, doc_maxlen: int = 180, seed: int = 0, dim: int = 128, init: str = "random"
    ) -> ColBERT:
        """A saved student folder, or a backbone id/folder (a fresh ``dim``-d projection, ``init`` from
        ``seed``) when it holds no ColBERT config."""
        from safetensors.torch import load_file

        folder_path = Path(folder)
        if not (folder_path / CONFIG_NAME).is_file():
            return cls(str(folder), dim=dim, doc_maxlen=doc_maxlen, seed=seed, init=init)
        config = json.loads((folder_path / CONFIG_NAME).read_text())
        model = cls(**{**config, "backbone": str(folder_path)})
        model.config_dict["backbone"] = config["backbone"]
        model.projection.weight.data.copy_(load_file(str(folder_path / PROJECTION_NAME))["weight"])
        return model


def maxsim(queries: torch.Tensor, docs: torch.Tensor, doc_mask: torch.Tensor) -> torch.Tensor:
    """Scores (B, G): queries (B, Lq, dim), docs (B, G, Ld, dim) with mask (B, G, Ld)."""
    sims = torch.einsum("bqd,bgtd->bgqt", queries, docs)
    sims = sims.masked_fill(~doc_mask.unsqueeze(2), float("-inf"))
    return sims.max(dim=-1).values.sum(dim=-1)


def maxsim_numpy(query: np.ndarray, doc: np.ndarray) -> float:
    """Score of one query (Lq, dim) against one passage (Ld, dim)."""
    return float((query @ doc.T).max(axis=1).sum())
