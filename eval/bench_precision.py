"""Throughput of the demo's stages in float32 and bfloat16, interleaved in one process.

A float32 run stands for a CPU without native bfloat16 (AVX2 only: there bfloat16 autocast is ~6x
slower than float32, so `auto` picks float32). Stages, on SciFact text with the demo's sizes:

* teacher train: MiniLM cross-encoder, 4 queries x (1 pos + 4 neg) per step, forward + backward + AdamW;
* teacher score: ``CrossEncoder.predict`` of (query, passage) pairs, batch 4, length-sorted;
* encode: all-MiniLM-L6-v2 passage embeddings, batch 64 (the init / student corpus encoding).

Rounds alternate float32 and bfloat16 so both see the same machine load; ``uptime`` is printed with
each line. Usage: ``python eval/bench_precision.py --max-length 160 128 --steps 6 --pairs 200 --docs 256``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import torch


def load_text():
    from retrodistill.data.load import load_dataset

    data = load_dataset("beir/scifact/train", "train")
    queries = [q.text for q in data.queries.values()]
    passages = [d.full_text() for d in data.corpus.values()]
    return queries, passages


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def teacher_train(queries, passages, max_length: int, steps: int, dtype) -> float:
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    model = CrossEncoder("sentence-transformers/all-MiniLM-L6-v2", num_labels=1, max_length=max_length)
    net, tok = model.model, model.tokenizer
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    net.train()
    rng = random.Random(0)
    elapsed = 0.0
    for step in range(steps + 1):
        qs = [q for q in rng.sample(queries, 4) for _ in range(5)]
        ps = rng.sample(passages, 20)
        start = time.perf_counter()
        batch = tok(qs, ps, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            logits = net(**batch).logits.view(4, 5).float()
        loss = -torch.log_softmax(logits, -1)[:, 0].mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step:  # the first step warms up
            elapsed += time.perf_counter() - start
    return steps / elapsed


def teacher_score(queries, passages, max_length: int, pairs: int, dtype) -> float:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder("sentence-transformers/all-MiniLM-L6-v2", num_labels=1, max_length=max_length)
    model.eval()
    rng = random.Random(1)
    items = sorted(((rng.choice(queries), rng.choice(passages)) for _ in range(pairs)), key=lambda p: len(p[1]))
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
        model.predict(items, batch_size=4, activation_fn=torch.nn.Identity(), show_progress_bar=False)
    return pairs / (time.perf_counter() - start)


def encode(passages, max_length: int, docs: int, dtype) -> float:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
    model.max_seq_length = max_length
    texts = sorted(random.Random(2).sample(passages, docs), key=len)
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
        model.encode(texts, batch_size=64, show_progress_bar=False)
    return docs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-length", type=int, nargs="+", default=[160])
    parser.add_argument("--encode-length", type=int, nargs="+", default=[256])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--docs", type=int, default=256)
    parser.add_argument("--stages", nargs="+", default=["train", "score", "encode"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    queries, passages = load_text()
    print(json.dumps({"cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}))
    for stage in args.stages:
        lengths = args.encode_length if stage == "encode" else args.max_length
        for length in lengths:
            for dtype in args.dtypes:
                before = load_avg()
                if stage == "train":
                    rate, unit = teacher_train(queries, passages, length, args.steps, dtype), "steps/s"
                elif stage == "score":
                    rate, unit = teacher_score(queries, passages, length, args.pairs, dtype), "pairs/s"
                else:
                    rate, unit = encode(passages, length, args.docs, dtype), "docs/s"
                row = {"stage": stage, "max_length": length, "dtype": dtype, unit: round(rate, 3)}
                print(json.dumps({**row, "load_before": before, "load_after": load_avg()}), flush=True)


if __name__ == "__main__":
    main()
