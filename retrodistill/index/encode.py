"""Resumable corpus encoding: length-sorted shards written atomically to a cache folder.

A killed run restarts from the shards already on disk; a finished corpus is loaded, not re-encoded.
The cache key covers the encoder fingerprint (weights + settings) and every doc id and text. With an
``executor`` (``retrodistill.executors``, e.g. Ray Data) the missing shards are encoded by its workers,
each holding a copy of the encoder built from ``encoder.settings()``, and written here as they arrive.
A multi-vector encoder's passages (``encode_corpus_tokens``) are cached the same way, as float16 token
matrices with their lengths.
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
from retrodistill.cache import default_cache_dir
from retrodistill.data.records import Document


class PassageEncoder(Protocol):
    model_id: str

    def fingerprint(self) -> str: ...

    def encode_passages(self, texts: Sequence[str], show_progress: bool = False) -> Any: ...


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
    encode = None if executor is None else partial(executor.map_payloads, partial(_passage_encoder, encoder.settings()))
    shards = _sharded(encoder, docs, cache_dir, shard_size, show_progress, ".npy", _save_dense, _load_dense, encode)
    stacked = np.concatenate([vectors for vectors, _ in shards])
    out = np.empty_like(stacked)
    out[_order(docs)] = stacked
    return out


def encode_corpus_tokens(
    encoder: PassageEncoder,
    docs: Sequence[Document],
    cache_dir: str | os.PathLike[str] | None = None,
    shard_size: int = 256,
    show_progress: bool = True,
) -> list[np.ndarray]:
    """Token vectors of ``docs`` in their order, one (tokens, dim) float16 array per passage (a
    multi-vector encoder's, e.g. ``ColBERTEncoder``), resuming from cached shards as ``encode_corpus`` does."""
    shards = _sharded(encoder, docs, cache_dir, shard_size, show_progress, ".npz", _save_tokens, _load_tokens, None)
    passages: list[np.ndarray] = [np.zeros(0)] * len(docs)
    positions = iter(_order(docs))
    for tokens, lengths in shards:
        for start, length in zip(np.cumsum(lengths) - lengths, lengths, strict=True):
            passages[int(next(positions))] = tokens[start : start + length]
    return passages


def _order(docs: Sequence[Document]) -> np.ndarray:
    """Documents longest first (shards of similar lengths pad little)."""
    return np.argsort([-len(doc.full_text()) for doc in docs], kind="stable")


def _sharded(
    encoder: PassageEncoder,
    docs: Sequence[Document],
    cache_dir: str | os.PathLike[str] | None,
    shard_size: int,
    show_progress: bool,
    suffix: str,
    save: Any,
    load: Any,
    encode_batches: Any,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every shard's (array, lengths) in length order: loaded from the cache when whole there, else
    encoded (``encode_batches(batches)`` yields (j, output) when given, else the encoder runs here)
    and written atomically by ``save`` before the next one."""
    if not docs:
        raise ValueError("cannot encode an empty corpus")
    folder = Path(cache_dir or default_cache_dir()) / "embeddings" / corpus_key(encoder, docs)
    folder.mkdir(parents=True, exist_ok=True)
    texts = [doc.full_text() for doc in docs]
    order = _order(docs)
    n_shards = (len(docs) + shard_size - 1) // shard_size
    write_json(folder / "info.json", {"model": encoder.model_id, "docs": len(docs), "shard_size": shard_size})
    paths = [folder / f"shard-{i:05d}{suffix}" for i in range(n_shards)]
    shards = [load(path, min(shard_size, len(docs) - i * shard_size)) for i, path in enumerate(paths)]
    done = sum(len(s[1]) for s in shards if s is not None)
    bar = tqdm(total=len(docs), initial=done, desc="encode passages", unit="doc", disable=not show_progress)
    missing = [i for i in range(n_shards) if shards[i] is None]
    batches = [[texts[r] for r in order[i * shard_size : (i + 1) * shard_size]] for i in missing]
    if encode_batches is None:
        results: Any = ((j, encoder.encode_passages(batch)) for j, batch in enumerate(batches))
    else:
        results = encode_batches(batches)
    for j, output in results:
        i = missing[j]
        shard = save(paths[i], output, len(batches[j]))
        shards[i] = shard
        bar.update(len(shard[1]))
    bar.close()
    return shards  # type: ignore[return-value]


def _save_dense(path: Path, output: Any, rows: int) -> tuple[np.ndarray, np.ndarray]:
    vectors = np.asarray(output, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != rows:
        raise RuntimeError(f"{path.name}: the encoder returned {vectors.shape} for {rows} passages")
    with atomic_open(path, "wb") as handle:
        np.save(handle, vectors)
    return vectors, np.ones(rows, dtype=np.int64)


def _load_dense(path: Path, rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    ok = len(array) == rows and array.dtype == np.float32
    return (array, np.ones(rows, dtype=np.int64)) if ok else None


def _save_tokens(path: Path, output: Any, rows: int) -> tuple[np.ndarray, np.ndarray]:
    if len(output) != rows or any(np.ndim(p) != 2 or not len(p) for p in output):
        raise RuntimeError(f"{path.name}: the encoder returned no token matrix for some of {rows} passages")
    lengths = np.array([len(p) for p in output], dtype=np.int64)
    tokens = np.concatenate(output).astype(np.float16)
    with atomic_open(path, "wb") as handle:
        np.savez(handle, tokens=tokens, lengths=lengths)
    return tokens, lengths


def _load_tokens(path: Path, rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            tokens, lengths = data["tokens"], data["lengths"]
    except (OSError, ValueError, KeyError):
        return None
    ok = len(lengths) == rows and tokens.dtype == np.float16 and int(lengths.sum()) == len(tokens)
    return (tokens, lengths) if ok else None


def _passage_encoder(settings: dict[str, Any]) -> Any:
    """In a worker: a BiEncoder built from ``settings``, as a function of a list of passage texts."""
    from retrodistill.students.bi_encoder import BiEncoder

    return BiEncoder(**settings).encode_passages
