"""A Qdrant collection as the vector index: the same index directory, ``serve``, ``/search`` and
``eval --system index:DIR`` over a vector database that runs as a cluster (``pip install
'retrodistill[qdrant]'``).

``url`` names a Qdrant server or cluster (``http://host:6333``); the collection then holds the
vectors and the directory's index file holds only where they are (url, collection, dim, rows). Without
``url`` the collection lives in this process (qdrant-client's local mode, exact search) and the index
file also carries the vectors, so the directory is self-contained - the mode of tests and laptops.

Point ids are the directory's row numbers and the distance is the dot product, so scores are the inner
products FAISS returns. Deleted rows stay as points and are filtered out of every search (the same
tombstones as FAISS). An API key is read from the environment variable ``api_key_env`` and never written.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import uuid
from typing import IO, Any

import numpy as np

from retrodistill.errors import ConfigError, DataError, require
from retrodistill.index.base import VectorIndex

FORMAT = "retrodistill-qdrant/1"
log = logging.getLogger("retrodistill.index")


def import_qdrant() -> Any:
    return require("qdrant_client", purpose="Qdrant indexes")


class QdrantCollection:
    """Where a collection lives and how it is reached, created, filled, searched and re-attached: the part
    the dense (``QdrantIndex``) and multi-vector (``qdrant_colbert``) indexes share. Subclasses set ``name``,
    ``FORMAT`` and ``_vector_params``; rows are point ids, deleted rows a ``must_not`` id filter."""

    name = "qdrant"
    FORMAT = FORMAT
    dim: int
    excluded: np.ndarray

    def _connect(
        self,
        url: str | None,
        collection: str | None,
        exact: bool,
        hnsw_ef: int,
        m: int,
        ef_construct: int,
        api_key_env: str,
        upload_batch: int,
        timeout: int,
    ) -> None:
        if min(hnsw_ef, m, ef_construct, upload_batch, timeout) < 1:
            raise ConfigError(f"{self.name}: hnsw_ef, m, ef_construct, upload_batch and timeout must be positive")
        self.url = url or None
        self.collection = collection or f"retrodistill-{uuid.uuid4().hex[:12]}"
        self.exact, self.hnsw_ef = bool(exact), int(hnsw_ef)
        self.m, self.ef_construct = int(m), int(ef_construct)
        self.api_key_env, self.upload_batch, self.timeout = api_key_env, int(upload_batch), int(timeout)
        self.models = import_qdrant().models
        self._client: Any = None
        self._rows = 0
        self._created = False
        self._lock = threading.Lock()

    @property
    def ntotal(self) -> int:
        return self._rows

    @property
    def params(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "collection": self.collection,
            "exact": self.exact,
            "hnsw_ef": self.hnsw_ef,
            "m": self.m,
            "ef_construct": self.ef_construct,
            "api_key_env": self.api_key_env,
        }

    @property
    def client(self) -> Any:
        """The qdrant-client connection (in-process local mode without ``url``)."""
        if self._client is None:
            qdrant = import_qdrant()
            if self.url is None:
                self._client = qdrant.QdrantClient(location=":memory:")
            else:
                key = os.environ.get(self.api_key_env) or None
                self._client = qdrant.QdrantClient(url=self.url, api_key=key, timeout=self.timeout)
        return self._client

    def _where(self) -> str:
        return f"collection {self.collection!r} on {self.url or 'the local in-process Qdrant'}"

    def _vector_params(self) -> Any:
        """The collection's ``VectorParams`` (dot product, ``dim``)."""
        return self.models.VectorParams(size=self.dim, distance=self.models.Distance.DOT)

    def _create(self) -> None:
        client = self.client
        if client.collection_exists(self.collection):
            points = client.count(self.collection, exact=True).count
            raise ConfigError(
                f"{self._where()} already exists ({points} points); name a new one with "
                f"--index {self.name},collection=NAME, or delete it first"
            )
        client.create_collection(
            self.collection,
            vectors_config=self._vector_params(),
            hnsw_config=self.models.HnswConfigDiff(m=self.m, ef_construct=self.ef_construct),
        )
        self._created = True

    def _upsert(self, points: np.ndarray | list[np.ndarray]) -> None:
        """Append ``points`` (rows of a (n, dim) matrix, or (tokens, dim) matrices) as rows ``ntotal...``,
        ``upload_batch`` per request, each turned into the client's lists only when it is sent."""
        if not self._created:
            self._create()
        for start in range(0, len(points), self.upload_batch):
            block = points[start : start + self.upload_batch]
            vectors = (
                block.tolist() if isinstance(block, np.ndarray) else [np.asarray(p, np.float32).tolist() for p in block]
            )
            ids = list(range(self._rows + start, self._rows + start + len(block)))
            with self._lock:
                self.client.upsert(self.collection, points=self.models.Batch(ids=ids, vectors=vectors), wait=True)
        self._rows += len(points)

    def _query(self, queries: list[Any], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) per query (a vector, or a list of token vectors), deleted rows skipped;
        ties go to the lower row."""
        models = self.models
        where = None
        if len(self.excluded):
            where = models.Filter(must_not=[models.HasIdCondition(has_id=[int(r) for r in self.excluded])])
        params = None if self.url is None else models.SearchParams(hnsw_ef=self.hnsw_ef, exact=self.exact)
        requests = [
            models.QueryRequest(query=q, limit=k, params=params, filter=where, with_payload=False) for q in queries
        ]
        with self._lock:
            answers = self.client.query_batch_points(self.collection, requests=requests)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row, answer in enumerate(answers):
            points = sorted(answer.points, key=lambda p: (-p.score, int(p.id)))[:k]
            scores[row, : len(points)] = [p.score for p in points]
            ids[row, : len(points)] = [int(p.id) for p in points]
        return scores, ids

    def _header(self, **extra: Any) -> bytes:
        header = {"format": self.FORMAT, "url": self.url, "collection": self.collection, "dim": self.dim}
        return (json.dumps({**header, "rows": self._rows, **extra}) + "\n").encode("utf-8")

    @classmethod
    def _read(cls, path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
        """The file's JSON header and the payload after it (the vectors, in local mode)."""
        try:
            with open(path, "rb") as handle:
                header = json.loads(handle.readline().decode("utf-8"))
                payload = handle.read()
        except FileNotFoundError:
            raise ConfigError(f"{path}: index file not found") from None
        if not isinstance(header, dict) or header.get("format") != cls.FORMAT:
            raise ValueError(f"not a {cls.FORMAT} file")
        return header, payload

    def _fits(self, vectors: Any) -> str | None:
        """Why the existing collection's vector config does not fit this index (None when it does)."""
        size = getattr(vectors, "size", None)
        if size != self.dim:
            return f"holds {size}-d vectors, the index directory {self.dim}-d"
        if getattr(vectors, "multivector_config", None) is not None:
            return "holds multi-vector (ColBERT) points, the index directory one vector per document"
        return None

    def _attach(self, rows: int) -> None:
        client = self.client
        if not client.collection_exists(self.collection):
            raise DataError(f"{self._where()} does not exist; rebuild the index directory or point url= at its server")
        misfit = self._fits(client.get_collection(self.collection).config.params.vectors)
        if misfit:
            raise DataError(f"{self._where()} {misfit}; rebuild it")
        points = client.count(self.collection, exact=True).count
        if points > rows:
            log.warning("%s: removing %d points of an update that did not commit", self._where(), points - rows)
            uncommitted = self.models.PointIdsList(points=list(range(rows, points)))
            client.delete(self.collection, points_selector=uncommitted, wait=True)
        elif points < rows:
            raise DataError(f"{self._where()} holds {points} points, the index directory {rows}; rebuild it")
        self._rows, self._created = rows, True


class QdrantIndex(QdrantCollection, VectorIndex):
    """Dense vectors in one Qdrant collection (dot product; HNSW with ``m`` / ``ef_construct`` on a server).

    ``hnsw_ef`` is the search beam and ``exact=True`` asks the server for a full scan (the flat-equivalent
    setting); both can change after loading. Local mode always scans exactly. ``upload_batch`` points go in one upsert.
    """

    def __init__(
        self,
        dim: int,
        query_chunk: int = 256,
        device: str = "auto",
        url: str | None = None,
        collection: str | None = None,
        exact: bool = False,
        hnsw_ef: int = 128,
        m: int = 16,
        ef_construct: int = 100,
        api_key_env: str = "QDRANT_API_KEY",
        upload_batch: int = 512,
        timeout: int = 60,
    ) -> None:
        VectorIndex.__init__(self, dim, query_chunk)
        self._connect(url, collection, exact, hnsw_ef, m, ef_construct, api_key_env, upload_batch, timeout)
        self._local_blocks: list[np.ndarray] = []

    def _add(self, vectors: np.ndarray) -> None:
        self._upsert(vectors)
        if self.url is None:
            self._local_blocks.append(vectors.copy())

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._query(queries.tolist(), k)

    def _search_excluding(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Qdrant skips the deleted rows itself (a ``must_not`` id filter)."""
        return self._query(queries.tolist(), k)

    def write(self, handle: IO[bytes]) -> None:
        """A JSON line naming the collection; in local mode the vectors follow as a ``.npy`` matrix (no pickle)."""
        handle.write(self._header())
        if self.url is None:
            blocks = self._local_blocks or [np.zeros((0, self.dim), dtype=np.float32)]
            matrix = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
            np.save(handle, matrix, allow_pickle=False)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], query_chunk: int = 256, mmap: bool = True, **params: Any
    ) -> QdrantIndex:
        """Reconnect to the collection named in the file (``url`` / ``collection`` in ``params`` override it,
        e.g. a cluster that moved); check its dimension and size. Points above the file's row count are
        an update that never committed and are removed."""
        header, payload = cls._read(path)
        url = params.pop("url", header["url"])
        collection = params.pop("collection", header["collection"])
        self = cls(int(header["dim"]), query_chunk=query_chunk, url=url, collection=collection, **params)
        if url is None:
            matrix = np.load(io.BytesIO(payload), allow_pickle=False)
            if matrix.shape != (int(header["rows"]), self.dim):
                raise ValueError(f"the stored vectors are {matrix.shape}, the header says {header['rows']} rows")
            self.add(matrix)
            return self
        self._attach(int(header["rows"]))
        return self
