"""Fine-tune a cross-encoder teacher: groupwise softmax loss on hard negatives, resumable after a kill.

Recipe (found on SciFact, 2 CPU cores; pointwise BCE collapsed to the label prior there): each training
example is a group of one positive and ``negatives`` hard negatives of the same query, mined from the
first stage (BM25 or a dense model); the loss is the cross-entropy of a softmax over the group's logits
with the positive as target (sentence-transformers' cross-encoder ``MultipleNegativesRankingLoss`` /
``ListNetLoss`` family, without in-batch negatives). ``positives > 1`` puts several judged positives in
a group and spreads the target evenly over them (ListNet with a uniform target), which averages out
noisy single positives where queries have many judged documents (NFCorpus). With graded qrels a
positive is drawn with probability proportional to its grade and negatives are candidates of lower
grade. ``loss="distill"`` instead learns from another teacher's stored scores: KL divergence between
softmax(teacher / T) and softmax(student) over a group drawn from the stored candidates (teacher
chaining, as in Instruction Distillation): the teacher's top candidate plus random others half of the
time, a random group otherwise. ``teacher_interpolate=W`` first mixes the stored scores with bm25s
(z-scores, Birch-style), so that an out-of-domain teacher plus BM25 can be distilled into one
cross-encoder on the target domain's queries (in-domain adaptation by pseudo-labels, as in GPL);
``label_boost=B`` then adds ``B x grade`` to each judged candidate, so the qrels steer the pseudo-labels.

The loop checkpoints model, optimizer and scheduler every ``checkpoint_every`` steps into
``checkpoints/step-N`` (``training.checkpoint``: atomic, the last two kept, state read back with
``weights_only=True``); the final model folder is swapped in whole. The data order is a pure function
of (seed, step), so a resumed run continues exactly.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retrodistill import __version__
from retrodistill.atomic import atomic_open, write_json
from retrodistill.data.records import Dataset
from retrodistill.errors import ConfigError, optional, require
from retrodistill.precision import Precision, bf16_alias, resolve_precision, torch_dtype
from retrodistill.training.checkpoint import Checkpoints, write_dir

log = logging.getLogger(__name__)


class TrainConfig(BaseModel):
    """``retrodistill teacher train`` settings; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(description="ir_datasets id or BEIR folder")
    split: str = "train"
    eval_split: str | None = "test"
    eval_dataset: str | None = Field(None, description="dataset to evaluate on when not `dataset` (ir_datasets ids)")
    output: str
    base_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    loss: Literal["groupwise", "distill"] = "groupwise"
    teacher_store: str | None = Field(None, description="score store to distill from (loss=distill)")
    temperature: float = Field(1.0, gt=0)
    teacher_interpolate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="loss=distill: learn W * z(stored teacher) + (1 - W) * z(bm25s) over each query's stored "
        "candidates (Birch-style, as `eval ... interpolate=W`; pick W on a dev split)",
    )
    label_boost: float = Field(
        0.0,
        ge=0,
        description="loss=distill: add boost x grade to the target of each judged candidate (qrels on top of "
        "the teacher; in z-score units with teacher_interpolate, else in the teacher's own)",
    )
    negatives: int = Field(7, ge=1)
    positives: int = Field(
        1, ge=1, description="judged positives per group (groupwise): the target spreads evenly over them"
    )
    negatives_from: str = Field("bm25s", description="retriever spec mining hard negatives")
    negatives_depth: int = Field(30, ge=2)
    skip_top: int = Field(0, ge=0, description="ignore the first-stage top-N when sampling negatives")
    queries_per_step: int = Field(4, ge=1)
    max_queries: int | None = Field(None, ge=1)
    epochs: float = Field(2.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    lr: float = Field(7e-5, gt=0)
    head_lr: float = Field(2e-3, gt=0, description="lr of the freshly initialised pooler + classifier head")
    warmup: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = 0.01
    max_length: int = Field(192, ge=16)
    seed: int = 42
    checkpoint_every: int = Field(25, ge=1)
    log_every: int = Field(5, ge=1)
    eval_depth: int = Field(100, ge=1)
    eval_queries: int | None = Field(None, ge=1)
    eval_batch_size: int | None = Field(None, ge=1, description="default: 4 on CPU, 32 on a GPU")
    precision: Precision = Field(
        "auto",
        description="bfloat16 autocast for the forward pass, or float32; auto = bfloat16 only where it is "
        "native (AVX512-BF16/AMX CPUs, GPUs) and measured faster; `bf16: true/false` is read as bfloat16/float32",
    )

    @model_validator(mode="before")
    @classmethod
    def _bf16_alias(cls, data: object) -> object:
        return bf16_alias(data)

    @field_validator("negatives_from")
    @classmethod
    def _negatives_source(cls, value: str) -> str:
        from retrodistill.retrieval.first_stage import check_source
        from retrodistill.specs import checked

        return checked(check_source, value)

    @model_validator(mode="after")
    def _distill_options_need_distill(self) -> TrainConfig:
        if self.loss != "distill" and (self.teacher_interpolate is not None or self.label_boost):
            raise ValueError(
                "teacher_interpolate and label_boost act on a stored teacher's scores; set loss to distill "
                "and give teacher_store"
            )
        return self


def _groups(
    config: TrainConfig, dataset: Dataset, show_progress: bool
) -> list[tuple[str, dict[str, float], list[str]]]:
    """(qid, positives -> weight, candidate ids) per training query."""
    if config.loss == "distill":
        from retrodistill.teachers.store import ScoreStore

        if not config.teacher_store:
            raise ConfigError("loss=distill needs --teacher-store, a store written by `retrodistill teach`")
        if not Path(config.teacher_store).is_file():
            raise ConfigError(f"teacher store {config.teacher_store} not found; create it with `retrodistill teach`")
        with ScoreStore.open(config.teacher_store) as store:
            run = store.run()
        run = {q: docs for q, docs in run.items() if q in dataset.queries and len(docs) > 1}
        if not run:
            raise ConfigError(
                f"the store {config.teacher_store} holds no query of {config.dataset} split {config.split} with "
                "two or more scored candidates; teach this dataset's queries into it first"
            )
        if config.teacher_interpolate is not None:
            from retrodistill.retrieval.fusion import interpolate_with_bm25

            w = config.teacher_interpolate
            log.info("stored teacher mixed with bm25s: %.2f * z(teacher) + %.2f * z(bm25s)", w, 1 - w)
            run = interpolate_with_bm25(run, dataset, w)
        if config.label_boost:
            boost, qrels = config.label_boost, dataset.qrels
            run = {
                q: {d: s + boost * max(qrels.get(q, {}).get(d, 0), 0) for d, s in docs.items()}
                for q, docs in run.items()
            }
        return [(q, docs, sorted(docs, key=lambda d: (-docs[d], d))) for q, docs in sorted(run.items())]
    from retrodistill.retrieval.first_stage import first_stage

    mined = first_stage(config.negatives_from, dataset, config.negatives_depth, show_progress)
    groups = []
    for qid, judged in dataset.qrels.items():
        positives = {d: float(g) for d, g in judged.items() if g > 0 and d in dataset.corpus}
        ranked = sorted(mined.get(qid, {}), key=lambda d: -mined[qid][d])[config.skip_top :]
        if positives and qid in dataset.queries:
            groups.append((qid, positives, ranked))
    return groups


def _sample(config: TrainConfig, group, qrels_q: dict[str, int], rng: random.Random, corpus_ids: list[str]):
    """(doc ids, target) of one example: positive first for groupwise, teacher scores for distill."""
    _, weights, ranked = group
    if config.loss == "distill":
        top = ranked[0] if rng.random() < 0.5 else rng.choice(ranked)
        rest = rng.sample([d for d in ranked if d != top], min(config.negatives, len(ranked) - 1))
        ids = [top, *rest]
        return ids, [weights[d] for d in ids]
    ids = list(weights)
    positive = rng.choices(ids, weights=[weights[d] for d in ids])[0]
    grade = weights[positive]
    same = [d for d in ids if d != positive and weights[d] == grade]
    positives = [positive, *rng.sample(same, min(config.positives - 1, len(same)))]
    pool = [d for d in ranked if qrels_q.get(d, 0) < grade]
    negatives = rng.sample(pool, min(config.negatives, len(pool)))
    while len(negatives) < config.negatives:
        extra = rng.choice(corpus_ids)
        if qrels_q.get(extra, 0) < grade and extra not in negatives:
            negatives.append(extra)
    return [*positives, *negatives], len(positives)


def train(config: TrainConfig, show_progress: bool = True) -> dict[str, object]:
    """Train (or resume) and evaluate; returns the summary written to ``output/summary.json``."""
    for module in ("torch", "sentence_transformers", "transformers"):
        require(module, purpose="teacher training")
    import torch
    from sentence_transformers import CrossEncoder
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from retrodistill.data.load import load_dataset

    dataset = load_dataset(config.dataset, config.split)
    groups = _groups(config, dataset, show_progress)
    if config.max_queries:
        groups = random.Random(config.seed).sample(groups, min(config.max_queries, len(groups)))
    if not groups:
        raise ConfigError(f"no training queries with positives in {config.dataset} split {config.split}")
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {"config": config.model_dump(), "retrodistill_version": __version__})
    per_epoch = math.ceil(len(groups) / config.queries_per_step)
    total = config.max_steps or math.ceil(config.epochs * per_epoch)

    checkpoints = Checkpoints(out / "checkpoints")
    last = checkpoints.last()
    step, history, state = 0, [], None
    if last:
        state, history = Checkpoints.load(last[1])
    torch.manual_seed(config.seed)
    source = str(last[1]) if last else config.base_model
    model = CrossEncoder(source, num_labels=1, max_length=config.max_length)
    net, tok = model.model, model.tokenizer
    head = [p for name, p in net.named_parameters() if name.startswith(("classifier", "bert.pooler", "pooler"))]
    body = [p for name, p in net.named_parameters() if not name.startswith(("classifier", "bert.pooler", "pooler"))]
    groups_lr = [{"params": body, "lr": config.lr}, {"params": head, "lr": config.head_lr}]
    optimizer = torch.optim.AdamW(groups_lr, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup * total), total)
    if last and state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step = last[0]
        log.info("resumed from %s at step %d/%d", last[1], step, total)

    corpus_ids = sorted(dataset.corpus)
    bar = tqdm(total=total, initial=step, desc="teacher train", unit="step", disable=not show_progress)
    net.train()
    precision = resolve_precision(config.precision, net.device.type)
    log.info("teacher training in %s (precision %s)", precision, config.precision)
    window_loss, window_pairs, window_start = [], 0, time.perf_counter()
    while step < total:
        epoch, offset = divmod(step * config.queries_per_step, len(groups))
        order = list(range(len(groups)))
        random.Random(config.seed * 1000 + epoch).shuffle(order)
        rng = random.Random(config.seed * 1_000_003 + step)
        picked = [groups[order[(offset + i) % len(groups)]] for i in range(config.queries_per_step)]
        examples = [_sample(config, g, dataset.qrels.get(g[0], {}), rng, corpus_ids) for g in picked]
        if config.loss == "groupwise":
            k = min(t for _, t in examples)
            examples = [(ids[:k] + ids[t:], t) for ids, t in examples]
        n = min(len(ids) for ids, _ in examples)
        queries = [dataset.queries[g[0]].text for g, (ids, _) in zip(picked, examples, strict=True) for _ in ids[:n]]
        passages = [dataset.corpus[d].full_text() for ids, _ in examples for d in ids[:n]]
        batch = tok(queries, passages, truncation=True, max_length=config.max_length, padding=True, return_tensors="pt")
        with torch.autocast(net.device.type, dtype=torch_dtype(precision), enabled=precision == "bfloat16"):
            logits = net(**batch).logits.view(len(examples), n).float()
        if config.loss == "distill":
            target = torch.tensor([t[:n] for _, t in examples], dtype=torch.float32) / config.temperature
            loss = torch.nn.functional.kl_div(
                torch.log_softmax(logits, -1), torch.log_softmax(target, -1), log_target=True, reduction="batchmean"
            )
        else:
            loss = -torch.log_softmax(logits, -1)[:, :k].mean(-1).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        step += 1
        bar.update(1)
        window_loss.append(float(loss.detach()))
        window_pairs += len(passages)
        if step % config.log_every == 0 or step == total:
            elapsed = time.perf_counter() - window_start
            entry = {"step": step, "epoch": step / per_epoch, "loss": sum(window_loss) / len(window_loss)}
            entry.update(lr=scheduler.get_last_lr()[0], pairs_per_s=window_pairs / max(elapsed, 1e-9))
            history.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3f}", pairs_s=f"{entry['pairs_per_s']:.1f}")
            log.info(
                "step %d/%d loss %.4f lr %.2e %.1f pairs/s",
                step,
                total,
                entry["loss"],
                entry["lr"],
                entry["pairs_per_s"],
            )
            window_loss, window_pairs, window_start = [], 0, time.perf_counter()
        if step % config.checkpoint_every == 0 or step == total:
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            checkpoints.save(step, state, history, lambda folder: model.save(str(folder)))
    bar.close()

    final = write_dir(out / "model", lambda folder: model.save(str(folder)))
    write_json(out / "log.json", {"steps": total, "queries": len(groups), "history": history})
    _plot(history, out / "curve.png")
    summary: dict[str, object] = {
        "model": str(final),
        "steps": total,
        "train_queries": len(groups),
        "precision": precision,
    }
    if config.eval_split:
        summary["eval"] = evaluate_reranking(
            str(final),
            eval_dataset_id(config),
            config.eval_split,
            config.eval_depth,
            config.eval_queries,
            config.max_length,
            config.eval_batch_size,
            show_progress,
            dtype=config.precision,
        )
    write_json(out / "summary.json", summary)
    return summary


def eval_dataset_id(config: TrainConfig) -> str:
    """The dataset evaluated after training: ``eval_dataset``, else ``dataset`` with its split swapped.

    An ir_datasets id names its split (``beir/nfcorpus/train``), so evaluating "split test" of it means
    ``beir/nfcorpus/test``; a BEIR folder takes the split as an argument and stays as it is.
    """
    if config.eval_dataset:
        return config.eval_dataset
    suffix = f"/{config.split}"
    if config.eval_split and not Path(config.dataset).is_dir() and config.dataset.endswith(suffix):
        return config.dataset[: -len(suffix)] + f"/{config.eval_split}"
    return config.dataset


def evaluate_reranking(
    model: str,
    dataset_spec: str,
    split: str,
    depth: int,
    n_queries: int | None,
    max_length: int,
    batch_size: int | None = None,
    show_progress: bool = True,
    first_stage: str = "bm25s",
    dtype: str = "auto",
) -> dict[str, object]:
    """nDCG@10 of the first stage and of the model re-ranking its top-``depth`` (first ``n_queries`` queries)."""
    from retrodistill.data.load import load_dataset
    from retrodistill.eval.measures import evaluate
    from retrodistill.teachers.cross_encoder import CrossEncoderTeacher

    data = load_dataset(dataset_spec, split)
    queries = data.judged_queries()[:n_queries] if n_queries else data.judged_queries()
    qrels = {q.query_id: data.qrels[q.query_id] for q in queries}
    from dataclasses import replace

    data = replace(data, qrels=qrels)
    from retrodistill.retrieval.first_stage import first_stage as retrieve_first

    first = retrieve_first(first_stage, data, depth, show_progress)
    lists = {q: sorted(docs, key=lambda d: -docs[d]) for q, docs in first.items()}
    teacher = CrossEncoderTeacher(model, batch_size=batch_size, max_length=max_length, dtype=dtype)
    start = time.perf_counter()
    run = teacher.score(data.queries, lists, data.corpus, show_progress=show_progress)
    seconds = time.perf_counter() - start
    measures = ["nDCG@10", "RR@10", f"R@{depth}"]
    base, ce = evaluate(first, qrels, measures).aggregate, evaluate(run, qrels, measures).aggregate
    pairs = sum(len(v) for v in lists.values())
    result = {"split": split, "queries": len(queries), "depth": depth, "first_stage": first_stage}
    result.update(first_stage_metrics=base, reranked_metrics=ce, pairs=pairs, pairs_per_s=pairs / seconds)
    log.info("%s re-ranking %s top-%d: nDCG@10 %.4f vs %.4f", model, first_stage, depth, ce["nDCG@10"], base["nDCG@10"])
    return result


def _plot(history: list[dict[str, float]], path: Path) -> None:
    if not history or (matplotlib := optional("matplotlib", skipped=path.name)) is None:
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("cross-encoder teacher training")
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
