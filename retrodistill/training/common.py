"""What the student trainers share: input checks, the teacher's run, checkpoints, the curve, the final evaluation."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from retrodistill import __version__
from retrodistill.atomic import atomic_open, write_json
from retrodistill.data.load import load_dataset
from retrodistill.data.records import Dataset, Run
from retrodistill.errors import ConfigError, optional
from retrodistill.retrieval.first_stage import first_stage
from retrodistill.specs import SystemSpec
from retrodistill.training.config import StudentConfig
from retrodistill.training.groups import (
    StudentExample,
    examples_from_qrels,
    examples_from_teacher,
    examples_from_teacher_ranking,
)

log = logging.getLogger("retrodistill.students")


@dataclass(frozen=True)
class TrainResult:
    output: Path
    model_dir: Path
    steps: int
    metrics: dict[str, float]


# Config keys that change a run's memory or time but not its weights: a run resumes with them changed.
RESUME_FREE_KEYS = frozenset({"activation_checkpointing"})


def checkpoint_activations(backbone) -> None:
    """Keep only each layer's input of a transformers ``backbone`` for the backward pass and recompute the rest
    there (non-reentrant, so every parameter gets its gradient); by the name this transformers version uses."""
    if not getattr(backbone, "supports_gradient_checkpointing", False):
        raise ConfigError(
            f"student.activation_checkpointing: {type(backbone).__name__} does not support it; "
            "set it to false (or pick a transformers model that does)"
        )
    enable = getattr(backbone, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def prepare(config: StudentConfig) -> tuple[Dataset, list[StudentExample]]:
    """Everything that can fail on bad input, checked before any model is loaded."""
    out = Path(config.output)
    previous = out / "config.json"
    if previous.is_file():
        old = json.loads(previous.read_text()).get("config") or {}
        defaults = {name: field.default for name, field in StudentConfig.model_fields.items()}
        new = {k: v for k, v in config.model_dump().items() if k in old or v != defaults.get(k)}
        old, new = ({k: v for k, v in d.items() if k not in RESUME_FREE_KEYS} for d in (old, new))
        if old != new:  # keys a newer version added count as equal while they hold their defaults
            raise ConfigError(
                f"{out} holds a training run with a different config; use a new output folder or delete it"
            )
    if config.store and not Path(config.store).exists():
        raise ConfigError(f"score store {config.store} not found; create it with `retrodistill teach`")
    dataset = load_dataset(config.dataset, config.split)
    if config.store:
        run = teacher_run(config.store, dataset)
        if config.teacher_interpolate is not None:
            from retrodistill.retrieval.fusion import interpolate_with_bm25

            w = config.teacher_interpolate
            log.info("teacher scores mixed with bm25s: %.2f * z(teacher) + %.2f * z(bm25s)", w, 1 - w)
            run = interpolate_with_bm25(run, dataset, w)
        if config.positives == "teacher-top":
            queries = {qid: q.text for qid, q in dataset.queries.items()}
            examples = examples_from_teacher_ranking(
                queries, dataset.corpus, run, config.group_size, config.seed, negatives=config.negatives
            )
        else:
            examples = examples_from_teacher(dataset, run, config.group_size, config.negatives, config.seed)
    else:
        examples = examples_from_qrels(
            dataset,
            first_stage("bm25s", dataset, config.hard_negative_depth, show_progress=False),
            config.group_size,
            config.seed,
        )
    return dataset, examples


def teacher_run(store_path: str, dataset: Dataset) -> Run:
    """The store's scores as a run, which must cover some of the dataset's judged queries."""
    from retrodistill.teachers.store import ScoreStore

    with ScoreStore.open(store_path) as store:
        run = store.run()
        spec = store.spec
    overlap = sum(1 for q in run if q in dataset.qrels)
    if not overlap:
        raise ConfigError(
            f"the store {store_path} ({spec.describe()}) holds no query of {dataset.name}; "
            "was it taught on another dataset or split?"
        )
    log.info("teacher %s: %d queries scored, %d judged in %s", spec.describe(), len(run), overlap, dataset.name)
    return run


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint with its trainer state and optimizer written (a kill can cut one short)."""
    if not folder.is_dir():
        return None
    done = [
        p
        for p in folder.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file() and (p / "optimizer.pt").is_file()
    ]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def final_eval(config: StudentConfig, system: SystemSpec, candidates: str | None = None) -> dict[str, float]:
    """Evaluate the trained student on the eval split (written to ``output/eval`` and ``output/metrics.json``).

    ``system`` is the student's spec (a record, so a path holding a comma stays whole); with
    ``candidates`` it re-ranks that first stage's top 100.
    """
    from retrodistill.eval.config import EvalConfig
    from retrodistill.eval.harness import run_evaluation
    from retrodistill.eval.report import write_outputs

    eval_config = EvalConfig(
        dataset=config.eval_dataset,
        split=config.eval_split,
        candidates=candidates,
        depth=100 if candidates else None,
        systems=[system],
        output=str(Path(config.output) / "eval"),
    )
    report = run_evaluation(eval_config, show_progress=False)
    write_outputs(report, Path(config.output) / "eval")
    metrics = report.results[-1].evaluation.aggregate
    write_json(Path(config.output) / "metrics.json", {"retrodistill_version": __version__, "eval": metrics})
    return metrics


def plot_curve(history: list[dict], path: Path, title: str) -> None:
    """Training loss per logged step and, where present, the in-training evaluation metric."""
    if (matplotlib := optional("matplotlib", skipped=path.name)) is None:
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], v) for h in history for k, v in h.items() if k.startswith("eval_") and k.endswith("ndcg@10")]
    fig, ax = plt.subplots(figsize=(7, 4))
    if loss:
        ax.plot(*zip(*loss, strict=True), label="train loss", color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if evals:
        ax2 = ax.twinx()
        ax2.plot(*zip(*evals, strict=True), "o-", color="tab:orange", label="eval nDCG@10")
        ax2.set_ylabel("nDCG@10 (re-rank sample)")
    ax.set_title(title, fontsize=9)
    if loss or evals:
        fig.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
