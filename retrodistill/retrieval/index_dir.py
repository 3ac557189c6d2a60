"""``index:DIR`` in ``retrodistill eval``: search a built index directory, encoding queries with its model."""

from __future__ import annotations

import logging
from typing import Literal

from retrodistill.data.records import Document
from retrodistill.errors import ConfigError
from retrodistill.retrieval.base import Retriever

log = logging.getLogger("retrodistill.index")


class IndexDirRetriever(Retriever):
    """Searches the index directory ``model`` (the spec argument: ``index:PATH``) with the query encoder
    its manifest names. Scores are the index's inner products (cosine for normalised models), higher =
    more relevant; a ``flat`` index gives exactly ``dense:MODEL``'s run; a ``colbert`` index scores by MaxSim.
    ``efSearch`` / ``nprobe`` (and ``ncandidates`` / ``exhaustive`` for colbert) override the manifest's
    search settings; ``encoder`` serves a copy of the model from another path; ``backend`` picks the query
    encoder's engine (``inference.backends``; default the one the index was built with).
    The directory is verified against its manifest first (``verify=full``: sizes and sha256 of every
    file; ``verify=fast``: sizes only); a damaged directory is a one-line error, never a wrong run.
    """

    name = "index"

    def __init__(
        self,
        model: str,
        batch_size: int = 64,
        device: str = "auto",
        encoder: str | None = None,
        efSearch: int | None = None,
        nprobe: int | None = None,
        ncandidates: int | None = None,
        exhaustive: bool | None = None,
        query_chunk: int = 256,
        verify: Literal["full", "fast"] = "full",
        backend: str | None = None,
    ) -> None:
        from retrodistill.index.store import load_index_dir

        super().__init__()
        given = {"efSearch": efSearch, "nprobe": nprobe, "ncandidates": ncandidates, "exhaustive": exhaustive}
        overrides = {key: v for key, v in given.items() if v is not None}
        self.store = load_index_dir(model, device=device, query_chunk=query_chunk, verify=verify, **overrides)
        self.encoder = self.store.open_encoder(encoder, batch_size=batch_size, backend=backend)

    def _index(self, docs: list[Document]) -> None:
        ids = {doc_id for doc_id in self.store.ids if doc_id is not None}
        given = {doc.doc_id for doc in docs}
        if ids != given:
            raise ConfigError(
                f"{self.store.path}: the index holds {len(ids)} docs ({len(ids - given)} not in the dataset's "
                f"corpus of {len(given)}); build it from the same corpus (retrodistill index build --corpus ...)"
            )

    def _search(self, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        hits = self.store.search(self.encoder.encode_queries(texts), k)
        return [[(h.doc_id, h.score) for h in row] for row in hits]
