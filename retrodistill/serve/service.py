"""What the server serves: an index directory, its query encoder and an optional cross-encoder."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from retrodistill.errors import ConfigError, require
from retrodistill.index.store import Hit, IndexDir, load_index_dir
from retrodistill.serve.settings import ServeSettings

log = logging.getLogger("retrodistill.serve")


@dataclass(frozen=True, slots=True)
class Result:
    """A hit with its document: ``score`` ranks the list (cross-encoder output when re-ranked,
    else the index's inner product); ``retrieval_score`` is always the index's inner product."""

    rank: int
    doc_id: str
    score: float
    retrieval_score: float
    title: str
    snippet: str


class SearchService:
    """Loads and checks everything at construction: a manifest that does not match the model
    (dimension, revision, normalisation) is a ConfigError before any request is served."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        if settings.threads:
            torch = require("torch", purpose="--threads")

            torch.set_num_threads(settings.threads)
        overrides = {k: v for k, v in (("efSearch", settings.efSearch), ("nprobe", settings.nprobe)) if v}
        self.store: IndexDir = load_index_dir(settings.index_dir, device=settings.device, **overrides)
        self.encoder = self.store.open_encoder(settings.model, batch_size=settings.encode_batch_size)
        self.reranker: Any = None
        if settings.reranker:
            self.reranker = _load_cross_encoder(settings.reranker)
        self.encoder.encode_queries(["warm up"])
        log.info(
            "serving %s (%s, %d docs) with %s",
            settings.index_dir,
            self.store.manifest["index"]["type"],
            len(self.store.ids),
            self.encoder.model_id,
        )

    @property
    def manifest(self) -> dict[str, Any]:
        return self.store.manifest

    def search_batch(self, items: list[tuple[str, int]]) -> list[list[Hit]]:
        """One encoder forward and one index search for many (query, k) items; runs in a worker thread."""
        vectors = self.encoder.encode_queries([text for text, _ in items])
        k_max = max(k for _, k in items)
        hits = self.store.search(vectors, k_max)
        return [row[:k] for row, (_, k) in zip(hits, items, strict=True)]

    def results(self, hits: list[Hit], rerank_query: str | None = None) -> list[Result]:
        """Attach titles and snippets; with ``rerank_query``, order by the cross-encoder's scores."""
        docs = self.store.docs.get([h.row for h in hits])
        scores = [h.score for h in hits]
        if rerank_query is not None and hits:
            pairs = [(rerank_query, d.full_text() if d else "") for d in docs]
            scores = [float(s) for s in self.reranker.predict(pairs, batch_size=self.settings.rerank_batch_size)]
        order = sorted(range(len(hits)), key=lambda i: -scores[i]) if rerank_query is not None else range(len(hits))
        cut = self.settings.snippet_chars
        out: list[Result] = []
        for rank, i in enumerate(order, start=1):
            doc = docs[i]
            text = doc.text if doc else ""
            snippet = text if len(text) <= cut else text[:cut].rsplit(" ", 1)[0] + " …"
            out.append(Result(rank, hits[i].doc_id, scores[i], hits[i].score, doc.title if doc else "", snippet))
        return out


def _load_cross_encoder(model: str) -> Any:
    CrossEncoder = require("sentence_transformers", purpose="--reranker").CrossEncoder
    try:
        return CrossEncoder(model)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot load cross-encoder {model!r} ({first}); check the id or path") from None
