"""Train a bi-encoder student with sentence-transformers' trainer: checkpoints, resume, logs, curve, evaluation."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from retrodistill import __version__
from retrodistill.atomic import write_json
from retrodistill.data.load import load_dataset
from retrodistill.data.records import Dataset, Run
from retrodistill.errors import ConfigError
from retrodistill.students.config import StudentConfig
from retrodistill.students.groups import StudentExample, examples_from_qrels, examples_from_teacher

log = logging.getLogger("retrodistill.students")


@dataclass(frozen=True)
class TrainResult:
    output: Path
    model_dir: Path
    steps: int
    metrics: dict[str, float]


def prepare(config: StudentConfig) -> tuple[Dataset, list[StudentExample]]:
    """Everything that can fail on bad input, checked before any model is loaded."""
    out = Path(config.output)
    previous = out / "config.json"
    if previous.is_file():
        import json

        old = json.loads(previous.read_text()).get("config") or {}
        defaults = {name: field.default for name, field in StudentConfig.model_fields.items()}
        new = {k: v for k, v in config.model_dump().items() if k in old or v != defaults.get(k)}
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
        examples = examples_from_teacher(dataset, run, config.group_size, config.negatives, config.seed)
    else:
        examples = examples_from_qrels(
            dataset, _bm25(dataset, config.hard_negative_depth), config.group_size, config.seed
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


def _bm25(dataset: Dataset, depth: int) -> Run:
    """bm25s top-``depth`` of every judged query."""
    from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever

    bm25 = BM25sRetriever()
    bm25.index(dataset.corpus)
    return bm25.retrieve(dataset.judged_queries(), depth, show_progress=False)


def train_student(config: StudentConfig, show_progress: bool = True) -> TrainResult:
    if config.student == "colbert":
        from retrodistill.students.colbert_train import train_colbert

        return train_colbert(config, show_progress)
    _, examples = prepare(config)
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {"retrodistill_version": __version__, "config": config.model_dump()})

    from datasets import Dataset as HFDataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    from retrodistill.students.distill_loss import ScoreDistillationLoss

    columns: dict[str, list] = {"query": [e.query for e in examples]}
    for g in range(config.group_size):
        columns[f"passage_{g}"] = [e.passages[g] for e in examples]
    columns["label"] = [list(e.scores) for e in examples]
    train_data = HFDataset.from_dict(columns)
    log.info("%d training groups of size %d", len(examples), config.group_size)

    model = SentenceTransformer(config.model)
    model.max_seq_length = config.max_seq_length
    loss = ScoreDistillationLoss(model, config.loss, config.student_scale, config.temperature, config.teacher_norm)
    evaluator = _evaluator(config) if config.eval_dataset and config.eval_steps else None
    ckpt_dir = out / "checkpoints"
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        warmup_ratio=config.warmup_ratio,
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        logging_steps=max(1, min(config.save_steps, 10)),
        eval_strategy="steps" if evaluator else "no",
        eval_steps=config.eval_steps,
        report_to=[],
        disable_tqdm=not show_progress,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        bf16=config.bf16,
        use_cpu=config.bf16 and not _has_accelerator(),
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_data, loss=loss, evaluator=evaluator
    )
    last = last_complete_checkpoint(ckpt_dir)
    if last:
        log.info("resuming from %s", last)
    trainer.train(resume_from_checkpoint=last)

    model_dir = out / "model"
    tmp = out / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.max_seq_length = config.inference_max_seq_length or config.max_seq_length
    model.save(str(tmp))
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp.rename(model_dir)
    history = trainer.state.log_history
    write_json(out / "train_log.json", {"retrodistill_version": __version__, "log_history": history})
    plot_curve(history, out / "training_curve.png", title=f"{config.model} -> {out.name}")
    metrics = _final_eval(config, model_dir) if config.eval_dataset else {}
    return TrainResult(out, model_dir, int(trainer.state.global_step), metrics)


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


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


def _evaluator(config: StudentConfig):
    from retrodistill.eval.config import EvalConfig
    from retrodistill.eval.harness import _first_stage
    from retrodistill.students.evaluator import RerankEvaluator

    dataset = load_dataset(config.eval_dataset, config.eval_split)
    cfg = EvalConfig(dataset=config.eval_dataset, split=config.eval_split, candidates=config.eval_candidates, depth=100)
    candidates = _first_stage(config.eval_candidates, dataset, cfg, show_progress=False)
    return RerankEvaluator(dataset, candidates, config.eval_queries)


def _final_eval(config: StudentConfig, model_dir: Path) -> dict[str, float]:
    from retrodistill.eval.config import EvalConfig
    from retrodistill.eval.harness import run_evaluation
    from retrodistill.eval.report import write_outputs

    eval_config = EvalConfig(
        dataset=config.eval_dataset,
        split=config.eval_split,
        systems=[f"dense:{model_dir},label=student"],
        output=str(Path(config.output) / "eval"),
    )
    report = run_evaluation(eval_config, show_progress=False)
    write_outputs(report, Path(config.output) / "eval")
    metrics = report.results[0].evaluation.aggregate
    write_json(Path(config.output) / "metrics.json", {"retrodistill_version": __version__, "eval": metrics})
    return metrics


def plot_curve(history: list[dict], path: Path, title: str) -> None:
    """Training loss per logged step and, where present, the in-training evaluation metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from retrodistill.atomic import atomic_open

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
