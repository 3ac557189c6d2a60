"""Index directories: a FAISS index, its doc-id map, a doc store and a manifest, built atomically.

Layout of ``DIR/``::

    manifest.json   model id + revision, dim, normalisation, metric, index type + params, corpus, version,
                    times; size + sha256 of every file below; a checksum of itself (see ``manifest``)
    index.faiss     the FAISS index (faiss.write_index; ``index.npy`` for the numpy oracle, ``index.qdrant``
                    for a Qdrant collection: where it is, plus the vectors in local mode; ``index.colbert``
                    for a ColBERT model's token vectors, see ``multivector``)
    ids.json        doc ids in row order: row i of the index is ids[i]; null marks a deleted row
    docs.sqlite     table docs(row, doc_id, title, text) for titles and snippets (live rows only)

The directory is built in a temp folder beside ``DIR`` and renamed into place, so ``DIR`` is never
half-written; corpus encoding resumes from cached shards after a kill (see ``encode_corpus``).
``load_index_dir`` verifies the directory against its manifest before reading anything else.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from retrodistill import __version__
from retrodistill.atomic import atomic_open
from retrodistill.data.records import Document
from retrodistill.errors import ConfigError, DataError
from retrodistill.index import INDEX_TYPES
from retrodistill.index.base import VectorIndex
from retrodistill.index.docstore import DOCS, DocStore, one_line, write_doc_store
from retrodistill.index.encode import corpus_key, encode_corpus, encode_corpus_tokens
from retrodistill.index.folder import building, check_target
from retrodistill.index.manifest import (
    FORMAT,
    MANIFEST,
    REBUILD,
    FileCheck,
    HashingWriter,
    IndexIntegrityError,
    file_entry,
    read_manifest,
    verify_files,
    write_manifest,
)
from retrodistill.index.options import check_positive, index_options
from retrodistill.revision import same_weights

__all__ = [
    "MANIFEST",
    "DocStore",
    "Hit",
    "IndexDir",
    "build_index_dir",
    "check_target",
    "load_index_dir",
    "read_manifest",
]

log = logging.getLogger("retrodistill.index")

IDS = "ids.json"
ADD_CHUNK = 65536
ADD_PASSAGES = 4096
KINDS = {False: "bi-encoder", True: "colbert"}


def index_file_name(index_type: str) -> str:
    if index_type.startswith("qdrant"):
        return "index.qdrant"
    return {"numpy": "index.npy", "colbert": "index.colbert"}.get(index_type, "index.faiss")


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: index row, doc id, and the index's score (inner product, higher = better)."""

    row: int
    doc_id: str
    score: float


class IndexDir:
    """A loaded, verified index directory: ``manifest``, ``index`` (a VectorIndex), ``ids`` (one per row,
    None for a deleted row, which searches skip), ``docs`` and ``checks`` (what was verified per file,
    with hashing times)."""

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        index: VectorIndex,
        ids: list[str | None],
        docs: DocStore,
        checks: dict[str, FileCheck] | None = None,
    ) -> None:
        self.path, self.manifest, self.index, self.ids, self.docs = path, manifest, index, ids, docs
        self.checks = checks or {}
        index.exclude([row for row, doc_id in enumerate(ids) if doc_id is None])

    @property
    def live_rows(self) -> list[int]:
        """Rows of documents not deleted, in row order."""
        return [row for row, doc_id in enumerate(self.ids) if doc_id is not None]

    @property
    def dim(self) -> int:
        return int(self.manifest["model"]["dim"])

    def search(self, query_vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-k hits per query vector, best first (fewer when the index finds fewer)."""
        scores, rows = self.index.search(query_vectors, k)
        return [
            [Hit(int(r), self.ids[r], float(s)) for s, r in zip(row_s, row_r, strict=True) if r >= 0]  # type: ignore[arg-type]
            for row_s, row_r in zip(scores, rows, strict=True)
        ]

    def encoder_settings(self) -> dict[str, Any]:
        model = self.manifest["model"]
        return {
            "normalize": bool(model["normalize"]),
            "max_seq_length": model.get("max_seq_length"),
            "query_prefix": model.get("query_prefix", ""),
            "passage_prefix": model.get("passage_prefix", ""),
        }

    @property
    def kind(self) -> str:
        """The model kind the index was built from: ``bi-encoder`` or ``colbert``."""
        return str(self.manifest["model"].get("kind", "bi-encoder"))

    def open_encoder(
        self,
        model: str | None = None,
        batch_size: int = 64,
        device: str | None = None,
        backend: str | None = None,
        threads: int | None = None,
    ) -> Any:
        """The query encoder of the manifest (or ``model``, a copy of it), checked against the index;
        ``backend`` (inference.backends; default the one the passages were encoded with) and ``threads``
        choose a bi-encoder's inference engine."""
        name = model or self.manifest["model"]["id"]
        backend = backend or str(self.manifest["model"].get("backend", "torch"))
        if self.kind == "colbert":
            if backend not in ("torch", "auto"):
                raise ConfigError(f"{self.path}: a colbert index encodes queries with torch; drop --backend {backend}")
            from retrodistill.students.colbert_encoder import ColBERTEncoder

            encoder: Any = ColBERTEncoder(
                name, batch_size=batch_size, device=device, doc_maxlen=self.manifest["model"]["max_seq_length"]
            )
        else:
            from retrodistill.students.bi_encoder import BiEncoder

            encoder = BiEncoder(
                name, batch_size=batch_size, device=device, backend=backend, threads=threads, **self.encoder_settings()
            )
        self.check_encoder(encoder)
        return encoder

    def check_encoder(self, encoder: Any) -> None:
        """ConfigError unless ``encoder`` gives the vectors this index was built from."""
        model = self.manifest["model"]
        kind = KINDS[bool(getattr(encoder, "multi_vector", False))]
        if kind != self.kind:
            raise ConfigError(
                f"{self.path}: the index holds {self.kind} vectors but model {encoder.model_id!r} is a {kind}; "
                f"serve the model the index was built with ({model['id']})"
            )
        if int(encoder.dim) != self.dim:
            raise ConfigError(
                f"{self.path}: the index holds {self.dim}-d vectors but model {encoder.model_id!r} gives "
                f"{encoder.dim}-d ones; serve the model the index was built with ({model['id']}) or rebuild the index"
            )
        if not same_weights(str(encoder.revision), str(model["revision"])):
            raise ConfigError(
                f"{self.path}: the index was built with model revision {model['revision']!r} but the model loaded "
                f"is {encoder.revision!r}; serve the same weights or rebuild the index with this model"
            )
        if bool(encoder.normalize) != bool(model["normalize"]):
            raise ConfigError(f"{self.path}: the index was built with normalize={model['normalize']}; use the same")


def build_index_dir(
    out: str | os.PathLike[str],
    encoder: Any,
    corpus: dict[str, Document],
    corpus_id: str,
    index_type: str = "flat",
    index_params: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    shard_size: int = 256,
    overwrite: bool = False,
    device: str = "auto",
    show_progress: bool = True,
    executor: Any = None,
) -> Path:
    """Encode ``corpus`` with ``encoder`` (a BiEncoder, on ``executor``'s workers when given, e.g. Ray
    Data; or a ColBERTEncoder into a ``colbert`` index), index it and write the directory ``out`` atomically."""
    out = Path(out).absolute()
    index_cls = INDEX_TYPES.get(index_type)
    params = index_options(index_type, index_params)
    check_positive(shard_size=shard_size)
    check_target(out, overwrite)
    if not corpus:
        raise DataError("the corpus is empty; nothing to index")
    multi = bool(getattr(encoder, "multi_vector", False))
    check_model_fits(encoder.model_id, multi, index_type)
    if multi and executor is not None:
        raise ConfigError("ColBERT corpora are encoded on this machine; drop --executor (Ray encodes bi-encoders)")
    if index_type != "numpy":
        params["device"] = device
    try:
        index = index_cls(encoder.dim, **params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for index type {index_type!r}: {exc}") from None
    docs = list(corpus.values())
    started = time.perf_counter()
    vectors: Any
    if multi:
        vectors = encode_corpus_tokens(encoder, docs, cache_dir, shard_size=shard_size, show_progress=show_progress)
    else:
        vectors = encode_corpus(
            encoder, docs, cache_dir, shard_size=shard_size, show_progress=show_progress, executor=executor
        )
    encoded = time.perf_counter()
    if not index.is_trained:
        log.info("training %s on %d vectors", index_type, len(vectors))
        index.train(vectors)
    chunk = ADD_PASSAGES if multi else ADD_CHUNK
    bar = tqdm(total=len(vectors), desc=f"add to {index_type}", unit="doc", disable=not show_progress)
    for start in range(0, len(vectors), chunk):
        index.add(vectors[start : start + chunk])
        bar.update(min(chunk, len(vectors) - start))
    bar.close()
    calibration = None
    if getattr(index, "needs_calibration", False):
        from retrodistill.index.calibrate import calibrate_nprobe

        calibration = calibrate_nprobe(index, encoder, docs, vectors, index.recall_target)
        log.info(
            "%s: nprobe=%d of %d cells reaches recall@%d %.3f on %d probe queries (target %.2f)",
            index_type, calibration.nprobe, index.nlist, calibration.k, calibration.recall, calibration.probes,
            calibration.target,
        )  # fmt: skip
    indexed = time.perf_counter()

    with building(out) as tmp:
        index_file = index_file_name(index_type)
        with atomic_open(tmp / index_file, "wb") as handle:
            index_writer = HashingWriter(handle)
            index.write(index_writer)
        with atomic_open(tmp / IDS, "wb") as handle:
            ids_writer = HashingWriter(handle)
            ids_writer.write((json.dumps([d.doc_id for d in docs]) + "\n").encode("utf-8"))
        write_doc_store(tmp / DOCS, docs)
        files = {"index": index_writer.entry(index_file), "ids": ids_writer.entry(IDS), "docs": file_entry(tmp, DOCS)}
        size = index_writer.bytes
        manifest = {
            "format": FORMAT,
            "retrodistill_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": {
                "encode": round(encoded - started, 3),
                "index": round(indexed - encoded, 3),
                "total": round(time.perf_counter() - started, 3),
            },
            "model": {
                "kind": KINDS[multi],
                "id": encoder.model_id,
                "revision": encoder.revision,
                "fingerprint": encoder.fingerprint(),
                "dim": int(encoder.dim),
                "normalize": bool(encoder.normalize),
                "max_seq_length": int(encoder.max_seq_length),
                "query_prefix": encoder.query_prefix,
                "passage_prefix": encoder.passage_prefix,
                "backend": str(getattr(encoder, "backend", "torch")),
            },
            "dim": int(encoder.dim),
            "normalized": bool(encoder.normalize),
            "metric": "maxsim" if multi else "inner_product",
            "index": {
                "type": index_type,
                "params": index.params,
                "file": index_file,
                "bytes": size,
                "bytes_per_vector": round(size / len(docs), 2),
                "ntotal": index.ntotal,
                **({"tokens": index.ntokens} if multi else {}),
                "built_on_gpu": bool(getattr(index, "on_gpu", False)),
                **({"calibration": calibration.as_dict()} if calibration else {}),
            },
            "corpus": {"id": corpus_id, "size": len(docs), "key": corpus_key(encoder, docs)},
            "files": files,
        }
        write_manifest(tmp, manifest)
    log.info("wrote %s (%s, %d vectors, %.1f s)", out, index_type, len(docs), time.perf_counter() - started)
    return out


def check_model_fits(model_id: str, multi: bool, index_type: str) -> None:
    """ConfigError unless a model (``multi``: a multi-vector one) fits the index type."""
    takes_multi = bool(getattr(INDEX_TYPES.get(index_type), "multi_vector", False))
    if multi and not takes_multi:
        raise ConfigError(
            f"{model_id} is a ColBERT model (token vectors); index it with --index colbert or qdrant-colbert, "
            f"not {index_type}"
        )
    if takes_multi and not multi:
        raise ConfigError(
            f"--index {index_type} takes a ColBERT model (a folder with colbert_config.json, from retrodistill "
            f"train --student colbert); {model_id} gives one vector per text: use flat, hnsw, ivf, ivfpq or qdrant"
        )


def load_index_dir(
    path: str | os.PathLike[str],
    device: str = "auto",
    query_chunk: int = 256,
    verify: str = "full",
    mmap: bool = True,
    **search_params: Any,
) -> IndexDir:
    """Load an index directory after verifying it against its manifest (``verify="full"``: sizes and
    sha256 of every file; ``"fast"``: sizes only). ``search_params`` override the manifest's (e.g.
    ``nprobe=32``, ``efSearch=256``). ``mmap=False`` reads every part into memory (an index that memory-maps
    its stored vectors, ivfpq with refine, can then take new vectors). Any damage is one IndexIntegrityError
    naming the file."""
    folder = Path(path)
    manifest = read_manifest(folder)
    checks = verify_files(folder, manifest, verify)
    info = manifest["index"]
    index_type = info["type"]
    cls = INDEX_TYPES.get(index_type)
    params = {**info["params"], **search_params}
    if index_type != "numpy":
        params["device"] = device
    index_path = checks["index"].path
    try:
        index = cls.load(index_path, query_chunk=query_chunk, mmap=mmap, **params)
    except TypeError as exc:
        raise ConfigError(f"bad search parameters for index type {index_type!r}: {exc}") from None
    except (RuntimeError, MemoryError, ValueError, EOFError, OSError) as exc:
        raise IndexIntegrityError(
            folder, f"{index_path.name} cannot be read by FAISS ({one_line(exc)}); {REBUILD}"
        ) from None
    ids = _read_ids(folder, checks["ids"].path)
    dim = manifest["model"]["dim"]
    if index.dim != dim:
        raise IndexIntegrityError(
            folder,
            f"{index_path.name} does not match its manifest (it holds {index.dim}-d vectors, the manifest says "
            f"dim={dim}); {REBUILD}",
        )
    live = sum(doc_id is not None for doc_id in ids)
    corpus = manifest["corpus"]
    if not (index.ntotal == len(ids)) or live != corpus["size"] or len(ids) - live != corpus.get("deleted", 0):
        raise IndexIntegrityError(
            folder,
            f"index rows ({index.ntotal}), ids ({len(ids)}, {live} live) and manifest corpus size "
            f"({corpus['size']} + {corpus.get('deleted', 0)} deleted) disagree; {REBUILD}",
        )
    docs = DocStore(checks["docs"].path)
    docs.check(ids)
    return IndexDir(folder, manifest, index, ids, docs, checks)


def _read_ids(folder: Path, path: Path) -> list[str | None]:
    try:
        ids = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexIntegrityError(folder, f"{path.name} cannot be read ({one_line(exc)}); {REBUILD}") from None
    live = [i for i in ids if i is not None] if isinstance(ids, list) else None
    if live is None or not all(isinstance(i, str) for i in live) or len(set(live)) != len(live):
        raise IndexIntegrityError(folder, f"{path.name} is not a list of distinct doc ids (null = deleted); {REBUILD}")
    return ids
