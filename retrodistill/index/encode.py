"""Resumable corpus encoding: length-sorted shards written atomically to a cache folder.

A killed run restarts from the shards already on disk; a finished corpus is loaded, not re-encoded.
The cache key covers the encoder fingerprint (weights + settings) and every doc id and text. With an
``executor`` (``retrodistill.executors``, e.g. Ray Data) the missing shards are encoded by its workers,
each holding a copy of the encoder built from ``encoder.settings()``, and written here as they arrive.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from retrodistill.atomic import atomic_open, write_json
from retrodistill.data.records import Document


class PassageEncoder(Protocol):
    model_id: str

    def fingerprint(self) -> str: ...

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray: ...


def default_cache_dir() -> Path:
    """``$RETRODISTILL_CACHE`` or ``~/.cache/retrodistill``."""
    return Path(os.environ.get("RETRODISTILL_CACHE") or Path.home() / ".cache" / "retrodistill")


def corpus_key(encoder: PassageEncoder, docs: Sequence[Document]) -> str:
    digest = hashlib.sha256(encoder.fingerprint().encode())
    for doc in docs:
        digest.update(doc.doc_id.encode())
        digest.update(b"\0")
        digest.update(doc.full_text().encode())
        digest.update(b"\1")
    return digest.hexdigest()[:24]


def encode_corpus(
    encoder: PassageEncoder,
    docs: Sequence[Document],
    cache_dir: str | os.PathLike[str] | None = None,
    shard_size: int = 256,
    show_progress: bool = True,
    executor: Any = None,
) -> np.ndarray:
    """Embeddings of ``docs`` in their order, float32 (n, dim), resuming from cached shards; the
    missing shards are encoded here, or by ``executor``'s workers when one is given."""
    folder = Path(cache_dir or default_cache_dir()) / "embeddings" / corpus_key(encoder, docs)
    folder.mkdir(parents=True, exist_ok=True)
    texts = [doc.full_text() for doc in docs]
    order = np.argsort([-len(t) for t in texts], kind="stable")
    n_shards = (len(docs) + shard_size - 1) // shard_size
    write_json(folder / "info.json", {"model": encoder.model_id, "docs": len(docs), "shard_size": shard_size})
    shards: list[np.ndarray | None] = []
    for i in range(n_shards):
        path = folder / f"shard-{i:05d}.npy"
        shards.append(_load(path, min(shard_size, len(docs) - i * shard_size)))
    done = sum(len(s) for s in shards if s is not None)
    bar = tqdm(total=len(docs), initial=done, desc="encode passages", unit="doc", disable=not show_progress)
    missing = [i for i in range(n_shards) if shards[i] is None]
    batches = [[texts[r] for r in order[i * shard_size : (i + 1) * shard_size]] for i in missing]
    if executor is None:
        results: Any = ((j, encoder.encode_passages(batch)) for j, batch in enumerate(batches))
    else:
        results = executor.map_payloads(partial(_passage_encoder, encoder.settings()), batches)
    for j, vectors in results:
        i = missing[j]
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(batches[j]), vectors.shape[1] if vectors.ndim == 2 else -1):
            raise RuntimeError(f"shard {i}: the encoder returned {vectors.shape} for {len(batches[j])} passages")
        with atomic_open(folder / f"shard-{i:05d}.npy", "wb") as handle:
            np.save(handle, vectors)
        shards[i] = vectors
        bar.update(len(vectors))
    bar.close()
    if not shards:
        raise ValueError("cannot encode an empty corpus")
    stacked = np.concatenate([s for s in shards if s is not None])
    out = np.empty_like(stacked)
    out[order] = stacked
    return out


def _passage_encoder(settings: dict[str, Any]) -> Any:
    """In a worker: a BiEncoder built from ``settings``, as a function of a list of passage texts."""
    from retrodistill.students.bi_encoder import BiEncoder

    return BiEncoder(**settings).encode_passages


def _load(path: Path, rows: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return array if len(array) == rows and array.dtype == np.float32 else None
