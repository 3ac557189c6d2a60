"""Throughput of `retrodistill teach` (cross-encoder) vs plain CrossEncoder.predict loops, in one run.

Same pairs for every path: the BM25 (bm25s) top-``depth`` of the first ``queries`` SciFact test queries
(SciFact abstracts, truncated at ``max_length`` tokens). Paths:

* ``teach``: the real CLI in a subprocess (length-sorted batches across queries, SQLite store writes),
  then the identical command again (everything is in the store: nothing is scored, no model is loaded);
* ``naive per query``: ``CrossEncoder.predict(pairs_of_one_query)`` per query (default batch 32), as
  people usually write a re-ranking loop;
* ``naive per pair``: ``CrossEncoder.predict([pair])`` per pair (on the first ``per_pair`` pairs only);
* ``teach dtype=bfloat16``: the same command with the teacher option ``dtype=bfloat16`` (autocast), into
  its own store; its scores are compared with the float32 ones (max |difference|, Spearman, and the
  share of queries whose top-10 order is unchanged);
* ``teach backend=B`` for each of ``--backends`` (default onnx, onnx-int8, openvino, auto; also openvino-bf16),
  float32 unless the backend says otherwise, each into its own store and compared with torch's scores the
  same way; ``auto`` reports the engine it measured fastest.

Throughput depends on the architecture, not on trained weights, so an untrained head (seeded) serves.
Peak RSS: the teach subprocess (ru_maxrss of children) and this process (naive paths, same model).

    python eval/bench_teach.py --queries 10 --depth 30 --per-pair 40 --max-length 256
    python eval/bench_teach.py --queries 10 --depth 30 --per-pair 30 --max-length 512
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beir/scifact/test")
    parser.add_argument("--model", default=None, help="cross-encoder folder (default: a seeded all-MiniLM-L6-v2 head)")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--per-pair", type=int, default=60, help="pairs timed one call each")
    parser.add_argument(
        "--backends",
        nargs="*",
        default=["onnx", "onnx-int8", "openvino", "auto"],
        help="cross-encoder backends timed with teach in float32, each into its own store",
    )
    parser.add_argument(
        "--output", default=None, help="path stem (default eval/results/teachers/bench_teach_<max_length>)"
    )
    args = parser.parse_args()

    import torch
    from sentence_transformers import CrossEncoder

    from retrodistill.data.load import load_dataset
    from retrodistill.training.candidates import gather_candidates

    work = Path(tempfile.mkdtemp(prefix="bench-teach-"))
    model_dir = args.model
    if model_dir is None:
        torch.manual_seed(0)
        model_dir = str(work / "ce")
        CrossEncoder("sentence-transformers/all-MiniLM-L6-v2", num_labels=1, max_length=args.max_length).save(model_dir)

    store = work / "store.sqlite"
    teach = [sys.executable, "-m", "retrodistill.cli.main", "-q", "teach", "--dataset", args.dataset]
    teach += [
        "--teacher",
        f"cross-encoder:{model_dir},max_length={args.max_length},dtype=float32",
        "--store",
        str(store),
    ]
    teach += ["--depth", str(args.depth), "--max-queries", str(args.queries)]
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        out = subprocess.run(teach, check=True, capture_output=True, text=True, env=os.environ.copy())
        runs.append((time.perf_counter() - start, json.loads(out.stdout.strip().splitlines()[-1])))
    teach_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    first, second = runs
    bf16_store = work / "store-bf16.sqlite"
    bf16_cmd = [a.replace("dtype=float32", "dtype=bfloat16") for a in teach]
    bf16_cmd[bf16_cmd.index(str(store))] = str(bf16_store)
    out = subprocess.run(bf16_cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
    bf16 = json.loads(out.stdout.strip().splitlines()[-1])
    agreement = _agreement(store, bf16_store)
    pairs_total = first[1]["pairs"]
    from retrodistill.teachers.cross_encoder import CrossEncoderTeacher

    on_float_graph = {"auto", "openvino", "openvino-bf16"} & set(args.backends)  # they run the onnx float export
    exports = ({"onnx"} if on_float_graph else set()) | ({"onnx", "onnx-int8"} & set(args.backends))
    for backend in sorted(exports):  # export once (cached), so no timed run pays for it
        CrossEncoderTeacher(model_dir, max_length=args.max_length, device="cpu", backend=backend)._graph(backend)
    backends = {}
    for backend in args.backends:
        backend_store = work / f"store-{backend}.sqlite"
        cmd = [a.replace("dtype=float32", f"dtype=float32,backend={backend}") for a in teach]
        cmd[cmd.index(str(store))] = str(backend_store)
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        backends[backend] = {
            "pairs_per_s": out["pairs"] / out["seconds"],
            "engine": out.get("engine", backend),
            **_agreement(store, backend_store),
        }

    data = load_dataset(args.dataset)
    lists = gather_candidates(data, ["bm25s"], args.depth, max_queries=args.queries, show_progress=False)
    per_query = [[(data.queries[q].text, data.corpus[d].full_text()) for d in ids] for q, ids in lists.items()]
    model = CrossEncoder(model_dir, num_labels=1, max_length=args.max_length)
    ident = torch.nn.Identity()
    start = time.perf_counter()
    for pairs in per_query:
        model.predict(pairs, activation_fn=ident, show_progress_bar=False)
    naive_q_s = time.perf_counter() - start
    flat = [p for pairs in per_query for p in pairs][: args.per_pair]
    start = time.perf_counter()
    for pair in flat:
        model.predict([pair], activation_fn=ident, show_progress_bar=False)
    naive_p_s = time.perf_counter() - start
    naive_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    teach_rate = pairs_total / first[1]["seconds"]
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        },
        "dataset": args.dataset,
        "queries": args.queries,
        "depth": args.depth,
        "pairs": pairs_total,
        "max_length": args.max_length,
        "teach": {
            "scoring_seconds": first[1]["seconds"],
            "pairs_per_s": teach_rate,
            "wall_seconds_incl_startup": first[0],
            "peak_rss_mb": teach_rss,
        },
        "teach_second_run": {"wall_seconds": second[0], "scored_now": second[1]["scored_now"]},
        "naive_per_query": {"seconds": naive_q_s, "pairs_per_s": pairs_total / naive_q_s},
        "naive_per_pair": {"pairs": len(flat), "seconds": naive_p_s, "pairs_per_s": len(flat) / naive_p_s},
        "naive_peak_rss_mb": naive_rss,
    }
    result["speedup_vs_per_query"] = teach_rate / result["naive_per_query"]["pairs_per_s"]
    result["speedup_vs_per_pair"] = teach_rate / result["naive_per_pair"]["pairs_per_s"]
    bf16_rate = bf16["pairs"] / bf16["seconds"]
    result["teach_bf16"] = {"scoring_seconds": bf16["seconds"], "pairs_per_s": bf16_rate, **agreement}
    result["speedup_bf16_vs_per_query"] = bf16_rate / result["naive_per_query"]["pairs_per_s"]
    result["backends"] = backends
    out_base = Path(args.output or f"eval/results/teachers/bench_teach_{args.max_length}")
    out_base.parent.mkdir(parents=True, exist_ok=True)
    out_base.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# teach throughput ({args.dataset}, {args.queries} queries x BM25 top-{args.depth} = {pairs_total} pairs, "
        f"max_length {args.max_length})",
        "",
        "| path | pairs/s | speed-up of teach | peak RSS MB |",
        "|---|---|---|---|",
        f"| `retrodistill teach` (length-sorted, stored) | {teach_rate:.1f} | 1.00x | {teach_rss:.0f} |",
        f"| `retrodistill teach`, `dtype=bfloat16` | {bf16_rate:.1f} | "
        f"{bf16_rate / teach_rate:.2f}x (vs per-query: {result['speedup_bf16_vs_per_query']:.2f}x) | |",
        *(
            f"| `retrodistill teach`, `backend={name}` (ran on {row['engine']}) | {row['pairs_per_s']:.1f} | "
            f"{row['pairs_per_s'] / teach_rate:.2f}x (vs per-query: "
            f"{row['pairs_per_s'] / result['naive_per_query']['pairs_per_s']:.2f}x) | |"
            for name, row in backends.items()
        ),
        f"| naive: predict per query | {result['naive_per_query']['pairs_per_s']:.1f} | "
        f"{result['speedup_vs_per_query']:.2f}x | {naive_rss:.0f} |",
        f"| naive: predict per pair ({len(flat)} pairs) | {result['naive_per_pair']['pairs_per_s']:.1f} | "
        f"{result['speedup_vs_per_pair']:.2f}x | {naive_rss:.0f} |",
        "",
        f"Second identical `teach` run: {second[0]:.1f} s wall (process start, data + BM25, store check; "
        f"{second[1]['scored_now']} pairs scored, no model loaded).",
        "",
        f"bfloat16 vs float32 scores: max |diff| {agreement['max_abs_diff']:.4f}, Spearman "
        f"{agreement['spearman']:.5f}, same top-10 order in {agreement['same_top10']:.0%} of queries.",
        *(
            f"backend={name} vs torch float32 scores: max |diff| {row['max_abs_diff']:.5f}, Spearman "
            f"{row['spearman']:.5f}, same top-10 order in {row['same_top10']:.0%} of queries."
            for name, row in backends.items()
        ),
    ]
    out_base.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def _agreement(a: Path, b: Path) -> dict[str, float]:
    import numpy as np
    from scipy.stats import spearmanr

    from retrodistill.teachers.store import ScoreStore

    with ScoreStore.open(a) as x, ScoreStore.open(b) as y:
        run_a, run_b = x.run(), y.run()
    keys = [(q, d) for q in run_a for d in run_a[q]]
    va = np.array([run_a[q][d] for q, d in keys])
    vb = np.array([run_b[q][d] for q, d in keys])

    def top10(run, q):
        return sorted(run[q], key=lambda d: -run[q][d])[:10]

    same = np.mean([top10(run_a, q) == top10(run_b, q) for q in run_a])
    return {
        "max_abs_diff": float(np.abs(va - vb).max()),
        "spearman": float(spearmanr(va, vb).correlation),
        "same_top10": float(same),
    }


if __name__ == "__main__":
    main()
