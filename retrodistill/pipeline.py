"""``retrodistill distill``: candidates -> teacher scores -> student training -> evaluation, in one command.

Every stage keeps its work in the run folder and re-uses it when run again: the score store skips
scored pairs, a trained student is not trained again, and corpus embeddings come from the cache.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from retrodistill import __version__
from retrodistill.atomic import write_json
from retrodistill.errors import ConfigError
from retrodistill.eval.harness import Report

log = logging.getLogger("retrodistill.distill")


class DistillConfig(BaseModel):
    """The whole chain. ``student`` holds StudentConfig keys (model, loss, group_size, epochs, ...)."""

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

    def store_path(self) -> Path:
        return Path(self.store) if self.store else Path(self.work_dir) / "teacher_scores.sqlite"


def run_distill(config: DistillConfig, show_progress: bool = True) -> Report:
    from retrodistill.training.config import StudentConfig

    work = Path(config.work_dir)
    forbidden = {"dataset", "split", "store", "output"} & set(config.student)
    if forbidden:
        raise ConfigError(f"student.{sorted(forbidden)[0]} is set by the pipeline; remove it from the config")
    student_config = StudentConfig(
        **{
            **config.student,
            "dataset": config.train_dataset,
            "split": config.train_split,
            "store": str(config.store_path()),
            "output": str(work / "student"),
        }
    )
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / "config.json", {"retrodistill_version": __version__, "config": config.model_dump()})
    teach(config, show_progress)
    model_dir = work / "student" / "model"
    if model_dir.is_dir():
        log.info("student already trained in %s; delete it to train again", model_dir)
    else:
        from retrodistill.training import train_student

        train_student(student_config, show_progress)
    report = compare(config, [(student_config, model_dir)], work, show_progress)
    from retrodistill.eval.report import write_outputs

    write_outputs(report, work / "eval")
    return report


def teach(config: DistillConfig, show_progress: bool = True) -> None:
    """Score the training candidates into the store, skipping what is already there."""
    from retrodistill.teachers import build_teacher
    from retrodistill.teachers.store import ScoreStore
    from retrodistill.training.candidates import gather_candidates, load_teach_data

    teacher = build_teacher(config.teacher)
    data, sources = load_teach_data(config.train_dataset, config.train_split, None, None, config.candidates)
    candidates = gather_candidates(
        data, sources, config.depth, config.force_positives, config.max_train_queries, show_progress
    )
    store_path = config.store_path()
    with ScoreStore(store_path, teacher.spec) as store:
        pending = teacher.pending(candidates, store)
        if pending:
            log.info("teacher %s: scoring %d pairs into %s", teacher.spec.describe(), pending, store_path)
            teacher.score(data.queries, candidates, data.corpus, store=store, show_progress=show_progress)
        else:
            log.info("teacher scores already in %s", store_path)


def compare(config: DistillConfig, students: list[tuple[Any, Path]], work: Path, show_progress: bool = True) -> Report:
    """BM25, the students' initialisation, the teacher re-ranking BM25, and each student, in one table.

    Bi-encoder students retrieve from the whole corpus; ColBERT students re-rank the BM25 top
    ``teacher_eval_depth`` by exact MaxSim, like the teacher.
    """
    from retrodistill.eval.config import EvalConfig
    from retrodistill.eval.harness import combine_reports, run_evaluation

    common = {"dataset": config.eval_dataset, "split": config.eval_split, "plot": True}
    retrieval_rows = ["bm25s"]
    rerank_rows = [f"{config.teacher},label=teacher,store={work / 'teacher_eval_scores.sqlite'}"]
    inits: set[str] = set()
    for student, model_dir in students:
        label = Path(student.output).name
        if student.student == "bi-encoder":
            if student.model not in inits:
                retrieval_rows.append(f"dense:{student.model},label=init")
            retrieval_rows.append(f"dense:{model_dir},label={label}")
        else:
            if f"colbert:{student.model}" not in inits:
                rerank_rows.append(f"colbert:{student.model},label=colbert-init")
            rerank_rows.append(f"colbert:{model_dir},label={label}")
        inits.add(student.model if student.student == "bi-encoder" else f"colbert:{student.model}")
    retrieval = run_evaluation(EvalConfig(**common, systems=retrieval_rows), show_progress)
    reranked = run_evaluation(
        EvalConfig(**common, candidates="bm25s", depth=config.teacher_eval_depth, systems=rerank_rows), show_progress
    )
    reranked.results = [r for r in reranked.results if r.name != "bm25s"]
    return combine_reports([retrieval, reranked], baseline="bm25s")
