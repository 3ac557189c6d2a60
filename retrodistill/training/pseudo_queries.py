"""Training queries for a corpus that has none: generate, filter, and export them as a BEIR folder.

The folder (``queries.jsonl``, ``corpus.jsonl``, ``qrels/generated.tsv`` naming each query's source
passage) is what the rest of the chain reads, so ``teach`` and ``train`` run on it as on any dataset.
The query store makes the step resumable; the export is rewritten from it on every run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrodistill.data.records import Document
from retrodistill.generation.config import GenerateConfig
from retrodistill.generation.generator import QueryGenerator

log = logging.getLogger("retrodistill.generation")


@dataclass(frozen=True)
class PseudoQueries:
    """Where the generated training set is and what making it cost.

    ``attempts`` asked for; ``kept`` after dropping empty and duplicate answers; ``meta_kept`` after the
    meta filter and ``filtered`` after the round-trip filter (each equal to the count before it when that
    filter is off); ``seconds`` of generation and of each filter.
    """

    folder: Path
    split: str
    attempts: int
    kept: int
    meta_kept: int
    filtered: int
    generate_seconds: float
    filter_seconds: float
    queries_per_s: float | None
    meta_seconds: float = 0.0

    @property
    def meta_fraction(self) -> float:
        """Of the kept queries, the share the meta filter kept (1.0 without it)."""
        return self.meta_kept / self.kept if self.kept else 0.0

    @property
    def kept_fraction(self) -> float:
        """Of the queries the round trip saw (after the meta filter), the share it kept."""
        return self.filtered / self.meta_kept if self.meta_kept else 0.0


def check_corpus(spec: str) -> None:
    """A DataError now when ``spec`` names no corpus file, BEIR folder or known ir_datasets id (reads no data)."""
    import os

    from retrodistill.errors import DataError

    path = Path(os.path.expanduser(spec))
    if path.exists():
        return
    if spec.startswith((".", "/", "~")) or spec.endswith((".jsonl", ".gz")):
        raise DataError("corpus not found; give a BEIR folder, a corpus.jsonl file or an ir_datasets id", spec)
    try:
        import ir_datasets
    except ImportError:
        return
    if spec not in ir_datasets.registry:
        raise DataError(f"unknown ir_datasets id {spec!r}; see https://ir-datasets.com (e.g. beir/scifact)")


@dataclass(frozen=True)
class Prepared:
    """The corpus read, the passages sampled and the generator, loaded when the store lacks some queries."""

    corpus: dict[str, Document]
    passages: list[Document]
    generator: QueryGenerator


def prepare(corpus_spec: str, config: GenerateConfig, work: Path) -> Prepared:
    """Read the corpus and load the LLM (only when queries are missing) before anything is written, so an
    empty corpus or an LLM that cannot be loaded is a one-line error that leaves no work folder behind."""
    from retrodistill.data.corpus import load_corpus
    from retrodistill.generation.generator import sample_passages
    from retrodistill.generation.store import QueryStore

    corpus = load_corpus(corpus_spec)
    generator = config.generator()
    passages = sample_passages(corpus, config.passages, config.seed)
    with QueryStore(work / "queries.sqlite", generator.spec) as store:
        done = store.done()
    if any((doc.doc_id, k) not in done for doc in passages for k in range(config.per_passage)):
        generator.load()
    return Prepared(corpus, passages, generator)


def pseudo_queries(
    corpus_spec: str,
    config: GenerateConfig,
    work: Path,
    show_progress: bool = True,
    prepared: Prepared | None = None,
    executor: Any = None,
) -> PseudoQueries:
    """Generate (resuming ``work/queries.sqlite``; on ``executor``'s workers when given), filter, and export
    to ``work/generated``."""
    from retrodistill.generation.export import SPLIT, export_queries
    from retrodistill.generation.store import QueryStore

    prepared = prepared or prepare(corpus_spec, config, work)
    corpus, passages, generator = prepared.corpus, prepared.passages, prepared.generator
    started = time.perf_counter()
    with QueryStore(work / "queries.sqlite", generator.spec) as store:
        counts = generator.generate(passages, config.per_passage, store, show_progress, executor)
        queries = store.queries()
    generate_seconds = time.perf_counter() - started
    wanted = {doc.doc_id for doc in passages}
    queries = [q for q in queries if q.doc_id in wanted and q.sample < config.per_passage]
    kept, filter_seconds, meta_seconds = queries, 0.0, 0.0
    if config.meta_filter:
        from retrodistill.generation.filter import meta_filter

        started = time.perf_counter()
        kept = meta_filter(queries)
        meta_seconds = time.perf_counter() - started
        log.info("meta filter: kept %d of %d queries", len(kept), len(queries))
    meta_kept = len(kept)
    if config.round_trip:
        from retrodistill.generation.filter import round_trip_filter
        from retrodistill.retrieval.first_stage import bind_retriever

        started = time.perf_counter()
        result = round_trip_filter(
            kept, corpus, config.round_trip_k, bind_retriever(config.round_trip).build(), show_progress
        )
        kept, filter_seconds = result.kept, time.perf_counter() - started
        log.info(
            "round-trip filter (%s, top %d): kept %d of %d queries (%.1f%%)",
            config.round_trip,
            config.round_trip_k,
            len(result.kept),
            meta_kept,
            100 * result.kept_fraction,
        )
    if not kept:
        from retrodistill.errors import DataError

        raise DataError(
            f"no generated query is left to train on ({len(queries)} generated, none passed the filters); "
            "generate more, or set generate.meta_filter to false / raise generate.round_trip_k"
        )
    folder = export_queries(kept, corpus, work / "generated")
    return PseudoQueries(
        folder,
        SPLIT,
        counts["attempts"],
        len(queries),
        meta_kept,
        len(kept),
        generate_seconds,
        filter_seconds,
        counts["queries_per_s"] or None,
        meta_seconds,
    )
