"""Training loop of the ColBERT student: (B, G) MaxSim scores against teacher scores, resumable."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from retrodistill import __version__
from retrodistill.atomic import write_json
from retrodistill.precision import resolve_precision
from retrodistill.specs import SystemSpec
from retrodistill.students.colbert import ColBERT, maxsim
from retrodistill.training.checkpoint import Checkpoints, write_dir
from retrodistill.training.common import TrainResult, checkpoint_activations, final_eval, plot_curve, prepare
from retrodistill.training.config import StudentConfig
from retrodistill.training.groups import StudentExample
from retrodistill.training.objective import mix_losses

log = logging.getLogger("retrodistill.students")


def train_colbert(config: StudentConfig, show_progress: bool = True):
    _, examples = prepare(config)
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {"retrodistill_version": __version__, "config": config.model_dump()})
    torch.manual_seed(config.seed)
    model = ColBERT.load(
        config.model,
        doc_maxlen=config.max_seq_length,
        seed=config.seed,
        dim=config.colbert_dim,
        init=config.colbert_init,
    )
    if config.activation_checkpointing:
        checkpoint_activations(model.encoder)
    per_epoch = math.ceil(len(examples) / config.batch_size)
    total = config.max_steps or max(1, int(per_epoch * config.epochs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    warmup = int(total * config.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    checkpoints = Checkpoints(out / "checkpoints")
    step, history = _resume(checkpoints, model, optimizer, scheduler)
    model.train()
    device = model.projection.weight.device.type
    precision = resolve_precision(config.precision, device)
    log.info("ColBERT training in %s (precision %s)", precision, config.precision)
    started = time.perf_counter()
    bar = tqdm(total=total, initial=step, desc="train colbert", unit="step", disable=not show_progress)
    while step < total:
        epoch, index = divmod(step, per_epoch)
        order = np.random.default_rng(config.seed + epoch).permutation(len(examples))
        batch = [examples[i] for i in order[index * config.batch_size : (index + 1) * config.batch_size]]
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            loss, parts = _step_loss(model, batch, config)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        history.append({"step": step, "loss": float(loss.detach()), **{f"loss_{k}": v for k, v in parts.items()}})
        bar.update(1)
        bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
        if step % config.save_steps == 0 or step == total:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
            state.update(scheduler=scheduler.state_dict(), torch_rng=torch.get_rng_state())
            checkpoints.save(step, state, history, lambda folder: None)
    bar.close()
    history.append({"step": step, "train_runtime": round(time.perf_counter() - started, 1)})
    model_dir = write_dir(out / "model", model.save)
    write_json(out / "train_log.json", {"retrodistill_version": __version__, "log_history": history})
    plot_curve(history, out / "training_curve.png", title=f"ColBERT {config.model} -> {out.name}")
    metrics = {}
    if config.eval_dataset:
        metrics = final_eval(config, SystemSpec("colbert", str(model_dir), label="student"), config.eval_candidates)
    return TrainResult(out, model_dir, step, metrics)


def _step_loss(model: ColBERT, batch: list[StudentExample], config: StudentConfig):
    group = config.group_size
    queries, _ = model(model.tokenize([e.query for e in batch], is_query=True))
    docs, mask = model(model.tokenize([p for e in batch for p in e.passages], is_query=False))
    b = len(batch)
    docs = docs.reshape(b, group, docs.shape[1], docs.shape[2])
    mask = mask.reshape(b, group, -1)
    student = maxsim(queries, docs, mask).float()
    in_batch = None
    if "infonce" in config.loss:
        all_docs = docs.reshape(1, b * group, docs.shape[2], docs.shape[3]).expand(b, -1, -1, -1)
        all_mask = mask.reshape(1, b * group, -1).expand(b, -1, -1)
        in_batch = maxsim(queries, all_docs, all_mask).float()
    teacher = torch.tensor([e.scores for e in batch], dtype=student.dtype)
    return mix_losses(
        student, teacher, config.loss, config.temperature, config.teacher_norm, in_batch, config.temperature
    )


def _resume(checkpoints: Checkpoints, model, optimizer, scheduler) -> tuple[int, list[dict]]:
    """(step, history) of the last complete checkpoint, its state loaded into the model; (0, []) if none."""
    last = checkpoints.last()
    if last is None:
        return 0, []
    state, history = Checkpoints.load(last[1])
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    log.info("resuming from %s", last[1])
    return last[0], history
