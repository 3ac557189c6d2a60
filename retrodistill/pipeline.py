"""``retrodistill distill``: candidates -> teacher scores -> student training -> evaluation, in one command.

Every stage keeps its work in the run folder and re-uses it when run again: the score store skips
scored pairs, a trained student is not trained again, and corpus embeddings come from the cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from retrodistill import __version__
from retrodistill.atomic import write_json
from retrodistill.errors import ConfigError
from retrodistill.eval.config import EvalConfig
from retrodistill.eval.harness import Report
from retrodistill.specs import SystemSpec, checked, parse_spec

if TYPE_CHECKING:
    from retrodistill.teachers.base import Teacher
    from retrodistill.training.config import StudentConfig
    from retrodistill.training.teach import TeachResult

log = logging.getLogger("retrodistill.distill")


class DistillConfig(BaseModel):
    """The whole chain. ``student`` holds StudentConfig keys (model, loss, group_size, epochs, ...).

    The teacher spec and the candidate sources are checked here; ``plan_distill`` checks the rest.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_dataset: str
    train_split: str = "train"
    eval_dataset: str
    eval_split: str = "test"
    teacher: str = Field(..., description="teacher spec, e.g. cross-encoder:models/ce-scifact")
    candidates: list[str] = Field(default_factory=lambda: ["bm25s"])
    depth: int = Field(30, ge=2, description="candidates scored per training query")
    force_positives: bool = True
    max_train_queries: int | None = Field(None, ge=1)
    teacher_eval_depth: int = Field(100, ge=1, description="BM25 candidates the teacher re-ranks in the table")
    student: dict[str, Any] = Field(default_factory=dict)
    store: str | None = Field(None, description="score store path (default: work_dir/teacher_scores.sqlite)")
    work_dir: str

    @field_validator("teacher")
    @classmethod
    def _teacher_spec(cls, value: str) -> str:
        from retrodistill.teachers import bind_teacher

        return checked(bind_teacher, value)

    @field_validator("candidates")
    @classmethod
    def _candidate_sources(cls, value: list[str]) -> list[str]:
        from retrodistill.retrieval.first_stage import check_source

        if not value:
            raise ValueError('give at least one candidate source, e.g. ["bm25s"]')
        return [checked(check_source, source) for source in value]

    def store_path(self) -> Path:
        return Path(self.store) if self.store else Path(self.work_dir) / "teacher_scores.sqlite"


@dataclass(frozen=True)
class DistillPlan:
    """The chain, checked: the teacher (constructed, not loaded), the student's config, the table's evaluations."""

    teacher: Teacher
    student: StudentConfig
    comparison: list[EvalConfig]


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
    teacher = build_teacher(config.teacher)
    for dataset, split in ((config.train_dataset, config.train_split), (config.eval_dataset, config.eval_split)):
        check_dataset(dataset, split)
    if student.eval_dataset:
        check_dataset(student.eval_dataset, student.eval_split)
    for source in config.candidates:
        check_source(source)
    comparison = comparison_configs(config, [(student, work / "student" / "model")], work)
    return DistillPlan(teacher, student, comparison)


def student_config(config: DistillConfig) -> StudentConfig:
    """The StudentConfig of the chain's student; its errors name the key as ``student.KEY``."""
    from retrodistill.training.config import StudentConfig

    forbidden = {"dataset", "split", "store", "output"} & set(config.student)
    if forbidden:
        raise ConfigError(f"student.{sorted(forbidden)[0]} is set by the pipeline; remove it from the config")
    try:
        return StudentConfig(
            **{
                **config.student,
                "dataset": config.train_dataset,
                "split": config.train_split,
                "store": str(config.store_path()),
                "output": str(Path(config.work_dir) / "student"),
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid configuration: student.{where}: {first['msg']}") from None


def run_distill(config: DistillConfig, show_progress: bool = True) -> Report:
    plan = plan_distill(config)
    work = Path(config.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / "config.json", {"retrodistill_version": __version__, "config": config.model_dump()})
    teach(config, show_progress, teacher=plan.teacher)
    model_dir = work / "student" / "model"
    if model_dir.is_dir():
        log.info("student already trained in %s; delete it to train again", model_dir)
    else:
        from retrodistill.training import train_student

        train_student(plan.student, show_progress)
    report = run_comparison(plan.comparison, show_progress)
    from retrodistill.eval.report import write_outputs

    write_outputs(report, work / "eval")
    return report


def teach(config: DistillConfig, show_progress: bool = True, teacher: Teacher | None = None) -> TeachResult:
    """Score the training candidates into the store, skipping what is already there."""
    from retrodistill.teachers import build_teacher
    from retrodistill.training.candidates import gather_candidates, load_teach_data
    from retrodistill.training.teach import teach as teach_job

    teacher = teacher or build_teacher(config.teacher)
    data, sources = load_teach_data(config.train_dataset, config.train_split, None, None, config.candidates)
    candidates = gather_candidates(
        data, sources, config.depth, config.force_positives, config.max_train_queries, show_progress
    )
    return teach_job(teacher, data, candidates, config.store_path(), show_progress)


def comparison_configs(config: DistillConfig, students: list[tuple[Any, Path]], work: Path) -> list[EvalConfig]:
    """The evaluations behind the table, each row checked (``EvalConfig`` binds every system); nothing runs.

    BM25, the students' initialisation, the teacher re-ranking BM25, and each student. Bi-encoder
    students retrieve from the whole corpus; ColBERT students re-rank the BM25 top
    ``teacher_eval_depth`` by exact MaxSim, like the teacher. Rows are ``SystemSpec`` records, so
    paths holding commas stay whole.
    """
    common = {"dataset": config.eval_dataset, "split": config.eval_split, "plot": True}
    teacher = parse_spec(config.teacher)
    retrieval_rows: list[str | SystemSpec] = ["bm25s"]
    rerank_rows: list[str | SystemSpec] = [
        replace(
            teacher,
            options={**teacher.options, "store": str(work / "teacher_eval_scores.sqlite")},
            label="teacher",
        )
    ]
    inits: set[str] = set()
    for student, model_dir in students:
        label = Path(student.output).name
        if student.student == "bi-encoder":
            if student.model not in inits:
                retrieval_rows.append(SystemSpec("dense", student.model, label="init"))
            retrieval_rows.append(SystemSpec("dense", str(model_dir), label=label))
        else:
            if f"colbert:{student.model}" not in inits:
                rerank_rows.append(SystemSpec("colbert", student.model, label="colbert-init"))
            rerank_rows.append(SystemSpec("colbert", str(model_dir), label=label))
        inits.add(student.model if student.student == "bi-encoder" else f"colbert:{student.model}")
    return [
        EvalConfig(**common, systems=retrieval_rows),
        EvalConfig(**common, candidates="bm25s", depth=config.teacher_eval_depth, systems=rerank_rows),
    ]


def run_comparison(configs: list[EvalConfig], show_progress: bool = True) -> Report:
    """Run the evaluations of ``comparison_configs`` and join them into one table against bm25s."""
    from retrodistill.eval.harness import combine_reports, run_evaluation

    retrieval, reranked = (run_evaluation(c, show_progress) for c in configs)
    reranked.results = [r for r in reranked.results if r.name != "bm25s"]
    return combine_reports([retrieval, reranked], baseline="bm25s")


def compare(config: DistillConfig, students: list[tuple[Any, Path]], work: Path, show_progress: bool = True) -> Report:
    """BM25, the students' initialisation, the teacher re-ranking BM25, and each student, in one table."""
    return run_comparison(comparison_configs(config, students, work), show_progress)
