"""What the server serves: an index directory, its query encoder, an optional cross-encoder, and the
optional BM25 and teacher columns of /compare (``retrodistill.serve.compare``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from retrodistill.errors import ConfigError, DataError, RetrodistillError, require
from retrodistill.index.store import Hit, IndexDir, load_index_dir
from retrodistill.serve.compare import SideBySide
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


PROBE_QUERY = "probe query"


class SearchService:
    """Loads and checks everything at construction: a manifest that does not match the model
    (dimension, revision, normalisation) is a ConfigError, and a part that fails the probe query
    (see ``probe``) a DataError or ConfigError, before any request is served. ``teacher`` is the
    teacher ``settings.teacher`` names, built by the caller (teachers sit above the server's layer)."""

    def __init__(self, settings: ServeSettings, teacher: Any = None) -> None:
        self.settings = settings
        if settings.threads:
            torch = require("torch", purpose="--threads")

            torch.set_num_threads(settings.threads)
        self.store: IndexDir = load_index_dir(settings.index_dir, device=settings.device, **settings.search_overrides())
        self.encoder = self.store.open_encoder(
            settings.model, batch_size=settings.encode_batch_size, backend=self.backend(), threads=settings.threads
        )
        self.reranker: Any = None
        if settings.reranker:
            self.reranker = _load_cross_encoder(settings.reranker)
        if bool(settings.teacher) != (teacher is not None):
            raise ConfigError("give the teacher object together with settings.teacher (retrodistill serve --teacher)")
        self.side = SideBySide(self.store, settings.bm25, teacher)
        self.probe()
        log.info(
            "serving %s (%s, %d docs) with %s (backend %s)",
            settings.index_dir,
            self.store.manifest["index"]["type"],
            self.manifest["corpus"]["size"],
            self.encoder.model_id,
            getattr(self.encoder, "backend", "torch"),
        )

    def backend(self) -> str:
        """The query encoder's engine: the one asked for; else the index's when its passages were encoded
        in int8 (queries must match them); else ``auto``, the fastest float engine measured at start
        (all float engines give the same vectors as the build)."""
        if self.settings.backend:
            return self.settings.backend
        built = str(self.store.manifest["model"].get("backend", "torch"))
        if self.store.kind == "colbert":
            return "torch"
        return built if built == "onnx-int8" else "auto"

    def probe(self) -> None:
        """One query through every part a request uses (and a warm-up): encode, search the index,
        read the top hit's row and the store's first and last rows (their doc ids must be the index's),
        and re-rank when a re-ranker is set. A part that fails raises a one-line DataError/ConfigError."""
        where = str(self.store.path)
        try:
            hits = self.search_batch([(PROBE_QUERY, 1)])[0]
        except RetrodistillError:
            raise
        except Exception as exc:
            message = f"the probe query failed in encoder or index ({_first_line(exc)}); rebuild the index directory"
            raise DataError(message, where) from None
        if not hits:
            raise DataError("the index returned no hit for the probe query; rebuild the index directory", where)
        live = self.store.live_rows
        rows = sorted({hits[0].row, live[0], live[-1]})
        doc_path = str(self.store.docs.path)
        try:
            docs = self.store.docs.get(rows)
        except Exception as exc:
            message = f"the doc store cannot be read ({_first_line(exc)}); rebuild the index directory"
            raise DataError(message, doc_path) from None
        for row, doc in zip(rows, docs, strict=True):
            if doc is None or doc.doc_id != self.store.ids[row]:
                found = "nothing" if doc is None else repr(doc.doc_id)
                raise DataError(
                    f"the doc store has {found} at row {row} where the index has {self.store.ids[row]!r}; "
                    "rebuild the index directory",
                    doc_path,
                )
        if self.reranker is not None:
            try:
                self.results(hits, PROBE_QUERY)
            except Exception as exc:
                raise ConfigError(
                    f"the re-ranker {self.settings.reranker!r} failed on the probe query ({_first_line(exc)})"
                ) from None
        try:
            if self.side.bm25 is not None:
                self.side.bm25_hits(PROBE_QUERY, 1)
            if self.side.teacher is not None:
                self.side.teacher_scores(PROBE_QUERY, hits)
        except Exception as exc:
            raise ConfigError(f"a /compare column failed on the probe query ({_first_line(exc)})") from None

    def add_documents(self, docs: list[Any]) -> dict[str, Any]:
        """``index add`` on the served directory with the served encoder, then the new state is served."""
        from retrodistill.index.update import add_documents

        record = add_documents(self.store.path, self.encoder, docs, show_progress=False)
        self._reload()
        return record

    def delete_documents(self, doc_ids: list[str]) -> dict[str, Any]:
        """``index delete`` on the served directory, then the new state is served."""
        from retrodistill.index.update import delete_documents

        record = delete_documents(self.store.path, doc_ids)
        self._reload()
        return record

    def _reload(self) -> None:
        """Load the updated directory and swap it in with one assignment per part: a request already
        running keeps the store it started with; rows never move, so its hits still read their documents
        (a row deleted meanwhile reads as empty)."""
        overrides = self.settings.search_overrides()
        store = load_index_dir(self.settings.index_dir, device=self.settings.device, verify="fast", **overrides)
        store.check_encoder(self.encoder)
        side = SideBySide(store, self.settings.bm25, self.side.teacher)
        self.store, self.side = store, side
        size, skipped = store.manifest["corpus"]["size"], len(store.index.excluded)
        log.info("now serving %d docs (%d deleted rows skipped)", size, skipped)

    @property
    def manifest(self) -> dict[str, Any]:
        return self.store.manifest

    def search_batch(self, items: list[tuple[str, int]]) -> list[list[Hit]]:
        """One encoder forward and one index search for many (query, k) items; runs in a worker thread."""
        vectors = self.encoder.encode_queries([text for text, _ in items])
        k_max = max(k for _, k in items)
        hits = self.store.search(vectors, k_max)
        return [row[:k] for row, (_, k) in zip(hits, items, strict=True)]

    def results(
        self, hits: list[Hit], rerank_query: str | None = None, scores: list[float] | None = None
    ) -> list[Result]:
        """Attach titles and snippets; with ``rerank_query``, order by the cross-encoder's scores, with
        ``scores`` (one per hit, e.g. a teacher's) by those. Ties keep the order of ``hits``."""
        docs = self.store.docs.get([h.row for h in hits])
        reorder = rerank_query is not None or scores is not None
        if rerank_query is not None and hits:
            pairs = [(rerank_query, d.full_text() if d else "") for d in docs]
            scores = [float(s) for s in self.reranker.predict(pairs, batch_size=self.settings.rerank_batch_size)]
        scores = [h.score for h in hits] if scores is None else scores
        order = sorted(range(len(hits)), key=lambda i: -scores[i]) if reorder else range(len(hits))
        cut = self.settings.snippet_chars
        out: list[Result] = []
        for rank, i in enumerate(order, start=1):
            doc = docs[i]
            text = doc.text if doc else ""
            snippet = text if len(text) <= cut else text[:cut].rsplit(" ", 1)[0] + " …"
            out.append(Result(rank, hits[i].doc_id, scores[i], hits[i].score, doc.title if doc else "", snippet))
        return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _load_cross_encoder(model: str) -> Any:
    CrossEncoder = require("sentence_transformers", purpose="--reranker").CrossEncoder
    try:
        return CrossEncoder(model)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot load cross-encoder {model!r} ({first}); check the id or path") from None
