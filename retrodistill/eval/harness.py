"""The evaluation job: load data, run or re-rank with each system, score, compare, write outputs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from retrodistill.data.records import Dataset, Run
from retrodistill.errors import ConfigError
from retrodistill.eval.config import EvalConfig
from retrodistill.eval.measures import Evaluation, evaluate, parse_measures
from retrodistill.eval.significance import paired_test
from retrodistill.memory import peak_rss_mb, release, reset_peak
from retrodistill.specs import SystemSpec, parse_spec

log = logging.getLogger("retrodistill.eval")


@dataclass
class SystemResult:
    name: str
    spec: str
    run: Run
    evaluation: Evaluation
    seconds: float
    peak_rss_mb: float
    pvalues: dict[str, float] = field(default_factory=dict)
    longest: int = 0  # the most documents the run ranks for one judged query
    truncated: dict[str, int] = field(default_factory=dict)  # measure -> longest, where shorter than its cutoff


@dataclass
class Report:
    config: EvalConfig
    dataset: str
    n_queries: int
    n_docs: int
    measures: list[str]
    baseline: str
    results: list[SystemResult]
    output_dir: Path | None = None
    depth: int | None = None  # candidates each re-ranker re-scored per query (re-ranking mode only)


def load_data(config: EvalConfig) -> Dataset:
    if config.dataset is None:
        from retrodistill.data.rankllm import load_rerank_task

        return load_rerank_task(config.qrels, config.candidates, config.queries)
    from retrodistill.data.load import load_dataset

    return load_dataset(config.dataset, config.split, config.qrels)


def run_evaluation(config: EvalConfig, show_progress: bool = True) -> Report:
    from retrodistill.eval.systems import bind_system

    specs = [parse_spec(s) if isinstance(s, str) else s for s in config.systems]
    measure_names = [str(m) for m in parse_measures(config.measures)]
    rerank_mode = config.candidates is not None
    systems = [bind_system(spec, rerank_mode, config.cache_dir) for spec in specs]  # checked again, with cache_dir
    _check_unique([s.name for s in specs])
    check_ensembles(specs)

    dataset = load_data(config)
    queries = dataset.judged_queries()
    results: list[SystemResult] = []

    def record(spec: SystemSpec | str, run: Run, seconds: float, text: str | None = None) -> None:
        name = spec.name if isinstance(spec, SystemSpec) else spec
        if text is None:
            text = name if isinstance(spec, str) else ",".join([name, *(f"{k}={v}" for k, v in spec.options.items())])
        evaluation = evaluate(run, dataset.qrels, config.measures)
        longest = max((len(run.get(q, {})) for q in dataset.qrels), default=0)
        truncated = truncated_measures(longest, measure_names, len(dataset.corpus))
        rss = peak_rss_mb()
        results.append(SystemResult(name, text, run, evaluation, seconds, rss, longest=longest, truncated=truncated))
        log.info("%s: %s (%.1f s)", name, _fmt(evaluation.aggregate), seconds)

    candidates = dataset.candidates
    if rerank_mode:
        reset_peak()
        start = time.perf_counter()
        if candidates is None:
            from retrodistill.retrieval.first_stage import first_stage

            candidates = first_stage(config.candidates, dataset, config.k, show_progress, config.cache_dir)
        from_file = dataset.candidates is not None or Path(config.candidates).is_file()
        cand_name = "candidates" if from_file else parse_spec(config.candidates).name
        record(cand_name, candidates, time.perf_counter() - start, config.candidates)

    for system in systems:
        reset_peak()  # each system's peak memory is its own (retrodistill.memory)
        start = time.perf_counter()
        if system.spec.kind == "ensemble":
            run = _fuse(system.spec, {r.name: r.run for r in results}, candidates if rerank_mode else None, config)
        elif system.build is None:
            run = _read_run(system.spec)
        elif rerank_mode:
            reranker = system.build()
            run = reranker.rerank(dataset.queries, candidates, dataset.corpus, config.depth, show_progress)
            if system.interpolate is not None:
                from retrodistill.retrieval.fusion import interpolate

                run = interpolate(run, candidates, system.interpolate, config.depth)
        else:
            retriever = system.build()
            retriever.index(dataset.corpus)
            run = retriever.retrieve(queries, config.k, show_progress)
        record(system.spec, run, time.perf_counter() - start)
        reranker = retriever = None  # the next system loads without this one's model
        release()

    baseline = config.baseline or results[0].name
    add_significance(results, baseline, list(dataset.qrels), measure_names, config.significance)
    depth = None
    if rerank_mode:
        depth = min(config.depth or results[0].longest, results[0].longest)
    n_docs = len(dataset.corpus)
    return Report(config, dataset.name, len(queries), n_docs, measure_names, baseline, results, depth=depth)


def add_significance(
    results: list[SystemResult], baseline: str, qids: list[str], measures: list[str], test: str
) -> None:
    """Fill each result's p-values against the ``baseline`` row (paired over ``qids``)."""
    names = [r.name for r in results]
    if baseline not in names:
        raise ConfigError(f"baseline {baseline!r} is not among the systems: {', '.join(names)}")
    base = next(r for r in results if r.name == baseline)
    for result in results:
        result.pvalues = {}
        if result is base:
            continue
        for measure in measures:
            a = [result.evaluation.per_query[measure][q] for q in qids]
            b = [base.evaluation.per_query[measure][q] for q in qids]
            result.pvalues[measure] = paired_test(a, b, test)


def combine_reports(reports: list[Report], baseline: str) -> Report:
    """One table from reports on the same queries (e.g. retrieval rows and re-ranking rows)."""
    first = reports[0]
    results = [r for report in reports for r in report.results]
    _check_unique([r.name for r in results])
    qids = list(first.results[0].evaluation.per_query[first.measures[0]])
    add_significance(results, baseline, qids, first.measures, first.config.significance)
    depth = next((r.depth for r in reports if r.depth is not None), None)
    return Report(
        first.config, first.dataset, first.n_queries, first.n_docs, first.measures, baseline, results, depth=depth
    )


def truncated_measures(longest: int, measures: list[str], n_docs: int) -> dict[str, int]:
    """Measures whose cutoff exceeds a run's ``longest`` list (and the corpus), mapped to that length.

    ``R@100`` of a run holding at most 30 documents per query is recall at 30, not at 100; such a value
    is labelled, not dropped. Measures without a cutoff (``AP``) are taken over the whole list as usual.
    """
    import ir_measures

    limits: dict[str, int] = {}
    for name in measures:
        cutoff = ir_measures.parse_measure(name).params.get("cutoff")
        if cutoff is not None and longest < min(cutoff, n_docs):
            limits[name] = longest
    return limits


def check_ensembles(specs: list[SystemSpec]) -> None:
    """Every ``ensemble:`` member must be a system listed before it (not the candidates row)."""
    from retrodistill.eval.systems import ensemble_members

    for i, spec in enumerate(specs):
        if spec.kind != "ensemble":
            continue
        earlier = [s.name for s in specs[:i]]
        for name in ensemble_members(spec).names:
            if name not in earlier:
                where = ", ".join(earlier) or "none"
                raise ConfigError(
                    f"{spec.name}: {name!r} is not a system listed before it (listed before: {where}); "
                    "list each member as its own --system first, or give it a label and use that"
                )


def _fuse(spec: SystemSpec, runs: dict[str, Run], candidates: Run | None, config: EvalConfig) -> Run:
    from retrodistill.eval.systems import ensemble_members
    from retrodistill.teachers.ensemble import fuse_reranked, fuse_runs

    members = ensemble_members(spec)
    chosen = [runs[name] for name in members.names]
    if candidates is None:
        return fuse_runs(chosen, members.weights, members.method, members.k)
    depth = config.depth or max((len(docs) for docs in candidates.values()), default=1)
    return fuse_reranked(chosen, candidates, depth, members.weights, members.method, members.k)


def _read_run(spec: SystemSpec) -> Run:
    from retrodistill.data.trec import read_run

    if not spec.arg:
        raise ConfigError("run needs a file: write run:PATH")
    return read_run(spec.arg)


def _check_unique(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"two systems are named {name!r}; give one a label, e.g. {name},label=other")
        seen.add(name)


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in values.items())
