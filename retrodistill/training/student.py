"""Train a bi-encoder student with sentence-transformers' trainer: checkpoints, resume, logs, curve, evaluation;
one process, or data-parallel under torchrun (``training.distributed``)."""

from __future__ import annotations

import logging
from pathlib import Path

from retrodistill import __version__
from retrodistill.atomic import write_json
from retrodistill.data.load import load_dataset
from retrodistill.errors import require
from retrodistill.precision import resolve_precision
from retrodistill.retrieval.first_stage import first_stage
from retrodistill.specs import SystemSpec
from retrodistill.training.checkpoint import write_dir
from retrodistill.training.common import (
    TrainResult,
    checkpoint_activations,
    final_eval,
    last_complete_checkpoint,
    plot_curve,
    prepare,
)
from retrodistill.training.config import StudentConfig
from retrodistill.training.distributed import backend, launch, per_process_batch, ranks_agree

log = logging.getLogger("retrodistill.students")


def train_bi_encoder(config: StudentConfig, show_progress: bool = True) -> TrainResult:
    """Train (or resume) a bi-encoder student with sentence-transformers' trainer. Under torchrun each process
    trains on its share of every global batch; rank 0 alone writes, and the others return without metrics."""
    for module in ("torch", "sentence_transformers", "datasets", "accelerate"):
        require(module, purpose="student training")
    rank, world = launch()
    batch = per_process_batch(config.batch_size, world)
    _, examples = prepare(config)
    out = Path(config.output)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {"retrodistill_version": __version__, "config": config.model_dump()})

    from datasets import Dataset as HFDataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    from retrodistill.training.objective import ScoreDistillationLoss

    columns: dict[str, list] = {"query": [e.query for e in examples]}
    for g in range(config.group_size):
        columns[f"passage_{g}"] = [e.passages[g] for e in examples]
    columns["label"] = [list(e.scores) for e in examples]
    train_data = HFDataset.from_dict(columns)
    log.info("%d training groups of size %d", len(examples), config.group_size)

    model = SentenceTransformer(config.model)
    model.max_seq_length = config.max_seq_length
    if config.activation_checkpointing:
        checkpoint_activations(model[0].auto_model)
    loss = ScoreDistillationLoss(model, config.loss, config.student_scale, config.temperature, config.teacher_norm)
    evaluator = _evaluator(config) if config.eval_dataset and config.eval_steps else None
    ckpt_dir = out / "checkpoints"
    precision = resolve_precision(config.precision, "cuda" if _has_accelerator() else "cpu")
    log.info("student training in %s (precision %s)", precision, config.precision)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=batch,
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
        bf16=precision == "bfloat16",
        use_cpu=not _has_accelerator(),
        ddp_backend=backend(_has_accelerator()) if world > 1 else None,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_data, loss=loss, evaluator=evaluator
    )
    last = last_complete_checkpoint(ckpt_dir)
    if last:
        log.info("resuming from %s", last)
    trainer.train(resume_from_checkpoint=last)
    agreement = ranks_agree(model) if world > 1 else None
    if rank != 0:
        return TrainResult(out, out / "model", int(trainer.state.global_step), {})

    model.max_seq_length = config.inference_max_seq_length or config.max_seq_length
    model_dir = write_dir(out / "model", lambda folder: model.save(str(folder)))
    history = trainer.state.log_history
    log_record = {"retrodistill_version": __version__, "log_history": history}
    if agreement is not None:
        log_record["data_parallel"] = agreement
        if not agreement["identical"]:
            log.warning("the %d ranks ended with different weights: %s", world, agreement["weights_sha256"])
    write_json(out / "train_log.json", log_record)
    plot_curve(history, out / "training_curve.png", title=f"{config.model} -> {out.name}")
    metrics = final_eval(config, SystemSpec("dense", str(model_dir), label="student")) if config.eval_dataset else {}
    return TrainResult(out, model_dir, int(trainer.state.global_step), metrics)


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def _evaluator(config: StudentConfig):
    from retrodistill.training.evaluator import RerankEvaluator

    dataset = load_dataset(config.eval_dataset, config.eval_split)
    candidates = first_stage(config.eval_candidates, dataset, 100, show_progress=False)
    return RerankEvaluator(dataset, candidates, config.eval_queries)
