"""The first stage for a dataset's judged queries: a retriever spec or a TREC run file, as one Run.

Used by ``teach`` (candidates), teacher and student training (negatives, evaluation candidates) and
``eval`` (re-ranking mode). Scores keep the first stage's semantics (BM25 scores, cosines, or the
run file's scores); higher = more relevant.
"""

from __future__ import annotations

from pathlib import Path

from retrodistill.data.records import Dataset, Run
from retrodistill.errors import ConfigError
from retrodistill.specs import BoundSpec, SystemSpec, bind, parse_spec


def bind_retriever(spec: SystemSpec | str, **defaults: object) -> BoundSpec:
    """A retriever spec checked against RETRIEVERS (nothing constructed, no model loaded)."""
    from retrodistill.retrieval import RETRIEVERS

    spec = parse_spec(spec) if isinstance(spec, str) else spec
    return bind(RETRIEVERS.get(spec.kind), spec, **defaults)


def check_source(source: str) -> None:
    """Fail now, with one line, when ``source`` is neither a run file nor a valid retriever spec (loads nothing)."""
    if Path(source).is_file():
        return
    from retrodistill.retrieval import RETRIEVERS

    spec = parse_spec(source)
    if spec.kind not in RETRIEVERS and ("/" in spec.kind or "." in spec.kind):
        raise ConfigError(
            f"{source}: no such run file, nor a retriever spec; give a TREC run file or one of: "
            f"{', '.join(RETRIEVERS.names())} (e.g. bm25s, dense:MODEL)"
        )
    bind_retriever(spec)


def first_stage(
    source: str,
    dataset: Dataset,
    depth: int,
    show_progress: bool = True,
    cache_dir: str | None = None,
) -> Run:
    """Top-``depth`` per judged query of ``dataset`` from ``source`` (a run file is read as it is)."""
    path = Path(source)
    if path.is_file():
        from retrodistill.data.trec import read_run

        run = read_run(path)
        missing = sum(1 for docs in run.values() for d in docs if d not in dataset.corpus)
        if missing:
            raise ConfigError(f"{path}: {missing} candidate documents are not in the corpus of {dataset.name}")
        return run
    retriever = bind_retriever(source, cache_dir=cache_dir).build()
    retriever.index(dataset.corpus)
    return retriever.retrieve(dataset.judged_queries(), depth, show_progress)
