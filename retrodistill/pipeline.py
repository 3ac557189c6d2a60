"""``retrodistill distill``: [pseudo-queries ->] candidates -> teacher scores -> student -> evaluation.

With a ``generate`` block the training data is a corpus alone: an LLM writes the training queries
(``training.pseudo_queries``) and the teachers' scores are the only supervision. Several teachers
score the same candidates into their own stores and are fused per query into one ensemble store.
Every stage keeps its work in the run folder and re-uses it when run again: the query and score
stores skip what they hold, a trained student is not trained again, corpus embeddings come from the
cache. Each stage's time is written to ``work_dir/stages.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from retrodistill import __version__
from retrodistill.atomic import write_json
from retrodistill.errors import ConfigError
from retrodistill.eval.config import EvalConfig
from retrodistill.eval.harness import Report
from retrodistill.executors.options import RayOptions
from retrodistill.generation.config import GenerateConfig
from retrodistill.memory import mark, peak_since_mark, release
from retrodistill.specs import SystemSpec, checked, parse_spec
from retrodistill.training.chain import ChainConfig

if TYPE_CHECKING:
    from retrodistill.teachers.base import Teacher
    from retrodistill.training.config import StudentConfig
    from retrodistill.training.teach import TeachResult

log = logging.getLogger("retrodistill.distill")


class DistillConfig(BaseModel):
    """The whole chain. ``student`` holds StudentConfig keys (model, loss, group_size, epochs, ...).

    ``train_dataset`` is a dataset with judged training queries, or, with ``generate``, a corpus alone
    (BEIR folder, corpus.jsonl, ir_datasets id) whose training queries are generated. ``teacher`` is
    one spec or a list fused per query by ``ensemble`` with ``teacher_weights``. Without
    ``eval_dataset`` (a corpus nobody judged) the chain stops after training. The teacher specs and
    the candidate sources are checked here; ``plan_distill`` checks the rest.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_dataset: str
    train_split: str = "train"
    generate: GenerateConfig | None = None
    eval_dataset: str | None = None
    eval_split: str = "test"
    teacher: str | list[str] | None = Field(None, description="teacher spec(s), e.g. cross-encoder:models/ce-scifact")
    chain: ChainConfig | None = None
    teacher_weights: list[float] | None = None
    ensemble: Literal["zscore", "rrf"] = "zscore"
    candidates: list[str] = Field(default_factory=lambda: ["bm25s"])
    depth: int = Field(30, ge=2, description="candidates scored per training query")
    force_positives: bool = True
    max_train_queries: int | None = Field(None, ge=1)
    teacher_eval_depth: int = Field(
        100, ge=0, description="BM25 candidates each teacher re-ranks in the table (0: no teacher rows)"
    )
    student: dict[str, Any] = Field(default_factory=dict)
    store: str | None = Field(None, description="score store path (default: work_dir/teacher_scores.sqlite)")
    executor: Literal["local", "ray"] = Field(
        "local", description="where generation and teacher scoring run: this process, or Ray Data actors (`ray`)"
    )
    ray: RayOptions | None = Field(None, description="with executor ray: address, actors, cpus/gpus per actor")
    work_dir: str

    @field_validator("teacher")
    @classmethod
    def _teacher_spec(cls, value: str | list[str] | None) -> str | list[str] | None:
        from retrodistill.teachers import bind_teacher

        if value is None:
            return value
        if isinstance(value, list):
            if not value:
                raise ValueError("give at least one teacher spec")
            return [checked(bind_teacher, v) for v in value]
        return checked(bind_teacher, value)

    @field_validator("teacher_weights")
    @classmethod
    def _weights(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (any(w < 0 for w in value) or not any(value)):
            raise ValueError("teacher weights must be >= 0 and not all zero")
        return value

    @model_validator(mode="after")
    def _some_teacher(self) -> DistillConfig:
        if self.teacher is None and self.chain is None:
            raise ValueError("give a teacher (a spec or a list of specs) or a chain")
        return self

    @property
    def teachers(self) -> list[str]:
        """The specs the student's candidates are scored by: the chain's cross-encoder first, then ``teacher``."""
        listed = [] if self.teacher is None else self.teacher if isinstance(self.teacher, list) else [self.teacher]
        chained = [self.chain.student_teacher(Path(self.work_dir))] if self.chain else []
        return chained + list(listed)

    def training_data(self) -> tuple[str, str]:
        """(dataset, split) the teachers score and the student trains on: the generated folder with ``generate``."""
        if self.generate is not None:
            from retrodistill.generation.export import SPLIT

            return str(Path(self.work_dir) / "generated"), SPLIT
        return self.train_dataset, self.train_split

    @field_validator("candidates")
    @classmethod
    def _candidate_sources(cls, value: list[str]) -> list[str]:
        from retrodistill.retrieval.first_stage import check_source

        if not value:
            raise ValueError('give at least one candidate source, e.g. ["bm25s"]')
        return [checked(check_source, source) for source in value]

    def store_path(self) -> Path:
        """The store the student reads: the teacher's, or the ensemble's fused scores."""
        return Path(self.store) if self.store else Path(self.work_dir) / "teacher_scores.sqlite"

    def member_store_paths(self) -> list[Path]:
        """Each teacher's own store (the student's store itself for a single teacher)."""
        if len(self.teachers) == 1:
            return [self.store_path()]
        return [
            Path(self.work_dir) / "teachers" / f"{i}-{parse_spec(t).kind}.sqlite" for i, t in enumerate(self.teachers)
        ]


@dataclass(frozen=True)
class DistillPlan:
    """The chain, checked: the teachers (constructed, not loaded), the student's config, the table's evaluations."""

    teachers: list[Teacher]
    student: StudentConfig
    comparison: list[EvalConfig]

    @property
    def teacher(self) -> Teacher:
        return self.teachers[0]


@dataclass
class Stages:
    """Seconds and peak resident memory per stage of one ``distill`` run, with what each did; written to
    ``stages.json``. A stage's peak is measured from the previous ``add`` (``retrodistill.memory``)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        mark()

    def add(self, stage: str, seconds: float, **detail: Any) -> None:
        peak = round(peak_since_mark(), 1)
        self.rows.append({"stage": stage, "seconds": round(seconds, 1), "peak_rss_mib": peak, **detail})
        log.info("stage %s: %.1f s, peak RSS %.0f MiB %s", stage, seconds, peak, detail)
        release()
        mark()


def plan_distill(config: DistillConfig) -> DistillPlan:
    """Check every stage of the chain before anything loads or is written; one-line errors.

    Covers the teacher spec (and its prompt template), the datasets, every candidate source, the
    student config (keys, model, loss, eval_candidates) and every row of the comparison table.
    """
    from retrodistill.data.load import check_dataset
    from retrodistill.retrieval.first_stage import check_source
    from retrodistill.teachers import build_teacher

    work = Path(config.work_dir)
    student = student_config(config)
    teachers = [build_teacher(t) for t in config.teachers]
    if config.teacher_weights is not None and len(config.teacher_weights) != len(teachers):
        raise ConfigError(f"give one teacher weight per teacher ({len(teachers)}), got {len(config.teacher_weights)}")
    if config.generate is not None:
        from retrodistill.training.pseudo_queries import check_corpus

        check_corpus(config.train_dataset)
    else:
        check_dataset(config.train_dataset, config.train_split)
    if config.eval_dataset:
        check_dataset(config.eval_dataset, config.eval_split)
    if student.eval_dataset:
        check_dataset(student.eval_dataset, student.eval_split)
    for source in config.candidates:
        check_source(source)
    if student.student == "colbert":
        from retrodistill.students.colbert import check_projection

        check_projection(student.model, student.colbert_dim, student.colbert_init)
    if config.chain is not None:
        build_teacher(config.chain.teacher)
        config.chain.trainer(*config.training_data(), work)
    comparison = comparison_configs(config, [(student, work / "student" / "model")], work)
    return DistillPlan(teachers, student, comparison)


def student_config(config: DistillConfig) -> StudentConfig:
    """The StudentConfig of the chain's student; its errors name the key as ``student.KEY``."""
    from retrodistill.training.config import StudentConfig

    forbidden = {"dataset", "split", "store", "output"} & set(config.student)
    if forbidden:
        raise ConfigError(f"student.{sorted(forbidden)[0]} is set by the pipeline; remove it from the config")
    dataset, split = config.training_data()
    try:
        return StudentConfig(
            **{
                **config.student,
                "dataset": dataset,
                "split": split,
                "store": str(config.store_path()),
                "output": str(Path(config.work_dir) / "student"),
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid configuration: student.{where}: {first['msg']}") from None


@dataclass(frozen=True)
class DistillResult:
    """The comparison table (None without an eval dataset) and the time of every stage."""

    report: Report | None
    stages: list[dict[str, Any]]


def run_distill(config: DistillConfig, show_progress: bool = True) -> DistillResult:
    plan = plan_distill(config)
    work = Path(config.work_dir)
    prepared = None
    if config.generate is not None:
        from retrodistill.training.pseudo_queries import prepare

        prepared = prepare(config.train_dataset, config.generate, work)
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / "config.json", {"retrodistill_version": __version__, "config": config.model_dump()})
    stages = Stages()
    executor = None
    if config.executor != "local":
        from retrodistill.executors import make_executor

        executor = make_executor(config.executor, config.ray)
        for member in plan.teachers:
            member.executor = executor
    if config.generate is not None:
        from retrodistill.training.pseudo_queries import pseudo_queries

        made = pseudo_queries(config.train_dataset, config.generate, work, show_progress, prepared, executor)
        stages.add(
            "generate queries",
            made.generate_seconds,
            attempts=made.attempts,
            kept=made.kept,
            queries_per_s=round(made.queries_per_s, 3) if made.queries_per_s else None,
        )
        if config.generate.meta_filter:
            stages.add("meta filter", made.meta_seconds, kept=made.meta_kept, fraction=round(made.meta_fraction, 3))
        if config.generate.round_trip:
            stages.add(
                "round-trip filter", made.filter_seconds, kept=made.filtered, fraction=round(made.kept_fraction, 3)
            )
    teach(config, show_progress, teachers=plan.teachers, stages=stages)
    plan.teachers.clear()  # the scores are in the store; the teachers' models are not needed again
    release()
    model_dir = work / "student" / "model"
    started, reused = time.perf_counter(), model_dir.is_dir()
    if reused:
        log.info("student already trained in %s; delete it to train again", model_dir)
    else:
        from retrodistill.training import train_student

        train_student(plan.student, show_progress)
    stages.add("train student", time.perf_counter() - started, reused=reused)
    report = None
    if config.eval_dataset:
        started = time.perf_counter()
        report = run_comparison(plan.comparison, show_progress)
        from retrodistill.eval.report import write_outputs

        write_outputs(report, work / "eval")
        stages.add("evaluate", time.perf_counter() - started, systems=len(report.results))
    write_json(work / "stages.json", {"retrodistill_version": __version__, "stages": stages.rows})
    return DistillResult(report, stages.rows)


def teach(
    config: DistillConfig,
    show_progress: bool = True,
    teacher: Teacher | None = None,
    teachers: list[Teacher] | None = None,
    stages: Stages | None = None,
) -> TeachResult:
    """Score the training candidates into each teacher's store, skipping what is already there, and fuse
    an ensemble's stores into ``config.store_path()``. Returns the last member's result."""
    from retrodistill.teachers import build_teacher
    from retrodistill.training.candidates import gather_candidates, load_teach_data
    from retrodistill.training.teach import fuse_stores
    from retrodistill.training.teach import teach as teach_job

    stages = stages if stages is not None else Stages()
    teachers = teachers or ([teacher] if teacher else [build_teacher(t) for t in config.teachers])
    dataset, split = config.training_data()
    started = time.perf_counter()
    data, sources = load_teach_data(dataset, split, None, None, config.candidates)
    candidates = gather_candidates(
        data, sources, config.depth, config.force_positives, config.max_train_queries, show_progress
    )
    stages.add("candidates", time.perf_counter() - started, sources="+".join(sources), queries=len(candidates))
    if config.chain is not None:
        from retrodistill.training.chain import run_chain

        link = run_chain(config.chain, data, dataset, split, candidates, Path(config.work_dir), show_progress)
        kind = parse_spec(config.chain.teacher).kind
        stages.add(f"chain: teach {kind}", link.score_seconds, queries=link.queries, pairs=link.pairs)
        stages.add("chain: train cross-encoder", link.train_seconds, reused=not link.trained_now)
    result = None
    for member, path in zip(teachers, config.member_store_paths(), strict=True):
        result = teach_job(member, data, candidates, path, show_progress)
        stages.add(
            f"teach {member.spec.kind}",
            result.seconds + result.model_load_seconds,
            pairs=result.pairs,
            scored_now=result.scored_now,
            units_per_s=round(result.units_per_s, 2) if result.units_per_s else None,
        )
    if len(teachers) > 1:
        started = time.perf_counter()
        rows = fuse_stores(config.member_store_paths(), config.store_path(), config.teacher_weights, config.ensemble)
        stages.add(f"fuse teachers ({config.ensemble})", time.perf_counter() - started, scores=rows)
    return result


def comparison_configs(config: DistillConfig, students: list[tuple[Any, Path]], work: Path) -> list[EvalConfig]:
    """The evaluations behind the table, each row checked (``EvalConfig`` binds every system); nothing runs.

    BM25, the students' initialisation, the teacher re-ranking BM25, and each student. Bi-encoder
    students retrieve from the whole corpus; ColBERT students re-rank the BM25 top
    ``teacher_eval_depth`` by exact MaxSim, like the teacher. Rows are ``SystemSpec`` records, so
    paths holding commas stay whole.
    """
    if not config.eval_dataset:
        return []
    common = {"dataset": config.eval_dataset, "split": config.eval_split, "plot": True}
    retrieval_rows: list[str | SystemSpec] = ["bm25s"]
    rerank_rows: list[str | SystemSpec] = []
    single = len(config.teachers) == 1
    for i, spec in enumerate(config.teachers if config.teacher_eval_depth else []):
        teacher = parse_spec(spec)
        store = work / ("teacher_eval_scores.sqlite" if single else f"teacher_eval_scores-{i}.sqlite")
        label = "teacher" if single else f"teacher-{i}-{teacher.kind}"
        rerank_rows.append(replace(teacher, options={**teacher.options, "store": str(store)}, label=label))
    inits: set[str] = set()
    for student, model_dir in students:
        label = Path(student.output).name
        if student.student == "bi-encoder":
            if student.model not in inits:
                retrieval_rows.append(SystemSpec("dense", student.model, label="init"))
            retrieval_rows.append(SystemSpec("dense", str(model_dir), label=label))
            inits.add(student.model)
        else:
            start = {"seed": student.seed}  # the projection training starts from
            if (student.colbert_dim, student.colbert_init) != (128, "random"):
                start |= {"dim": student.colbert_dim, "init": student.colbert_init}
            key = f"colbert:{student.model}:{sorted(start.items())}"
            if key not in inits:
                rerank_rows.append(SystemSpec("colbert", student.model, start, label="colbert-init"))
            rerank_rows.append(SystemSpec("colbert", str(model_dir), label=label))
            inits.add(key)
    configs = [EvalConfig(**common, systems=retrieval_rows)]
    if rerank_rows:
        depth = config.teacher_eval_depth or 100
        configs.append(EvalConfig(**common, candidates="bm25s", depth=depth, systems=rerank_rows))
    return configs


def run_comparison(configs: list[EvalConfig], show_progress: bool = True) -> Report:
    """Run the evaluations of ``comparison_configs`` and join them into one table against bm25s."""
    from retrodistill.eval.harness import combine_reports, run_evaluation

    retrieval, *reranked = (run_evaluation(c, show_progress) for c in configs)
    for report in reranked:
        report.results = [r for r in report.results if r.name != "bm25s"]
    return combine_reports([retrieval, *reranked], baseline="bm25s")


def compare(config: DistillConfig, students: list[tuple[Any, Path]], work: Path, show_progress: bool = True) -> Report:
    """BM25, the students' initialisation, the teacher re-ranking BM25, and each student, in one table."""
    return run_comparison(comparison_configs(config, students, work), show_progress)
