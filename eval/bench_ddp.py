"""One process vs torchrun data parallelism on the same student config and global batch: metrics and time.

    python eval/bench_ddp.py eval/configs/scale/ddp-scifact.json --procs 2

Trains the config once with ``retrodistill train`` and once with ``torchrun --nproc_per_node=PROCS -m
retrodistill.cli.main train`` (each in its own output folder under ``--work``; a finished one is re-used),
then reads each student's evaluation (the config's ``eval_dataset``) and compares them per query: the
two runs see the same global batches in a different order, so their metrics should agree within noise.
Results: <out>/bench_ddp.json and .md (default eval/results/scale/), with machine info.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="a `retrodistill train` config with an eval_dataset")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("eval/runs/bench-ddp"))
    parser.add_argument("--out", type=Path, default=Path("eval/results/scale"))
    args = parser.parse_args()

    from retrodistill.cli.configfile import load_config_file
    from retrodistill.data.load import load_dataset
    from retrodistill.data.trec import read_run
    from retrodistill.eval.measures import evaluate
    from retrodistill.eval.significance import paired_test

    values = load_config_file(args.config)
    if not values.get("eval_dataset"):
        sys.exit("bench_ddp: the config needs an eval_dataset")
    train = [sys.executable, "-m", "retrodistill.cli.main", "-q", "train"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.procs}"]
    launches = {
        "1 process": train,
        f"torchrun, {args.procs} processes": [*torchrun, "-m", "retrodistill.cli.main", "-q", "train"],
    }
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // args.procs))}
    rows = []
    for name, command in launches.items():
        output = args.work / ("one" if name == "1 process" else f"ddp{args.procs}")
        wall = output / "bench_wall_s.json"  # the launch's wall time, kept for a re-read
        if not (output / "metrics.json").is_file():
            started = time.perf_counter()
            threads = env if name != "1 process" else dict(os.environ)
            subprocess.run([*command, str(args.config), "--output", str(output)], check=True, env=threads)
            wall.write_text(json.dumps(time.perf_counter() - started))
        seconds = json.loads(wall.read_text()) if wall.is_file() else float("nan")
        log = json.loads((output / "train_log.json").read_text())
        rows.append({"launch": name, "output": str(output), "seconds": round(seconds, 1), "log": log})
    dataset = load_dataset(values["eval_dataset"], values.get("eval_split", "test"))
    measures = ["nDCG@10", "RR@10", "R@100"]
    runs = [read_run(Path(r["output"]) / "eval" / "student.trec") for r in rows]
    evaluations = [evaluate(run, dataset.qrels, measures) for run in runs]
    qids = sorted(dataset.qrels)
    for row, result in zip(rows, evaluations, strict=True):
        row["metrics"] = {m: round(v, 4) for m, v in result.aggregate.items()}
        row["steps"] = max((h["step"] for h in row["log"]["log_history"] if "step" in h), default=0)
        row["identical_ranks"] = row["log"].get("data_parallel", {}).get("identical")
        runtime = [h["train_runtime"] for h in row["log"]["log_history"] if "train_runtime" in h]
        row["train_s"] = round(runtime[-1], 1) if runtime else None
        del row["log"]
    base, ddp = evaluations
    p = paired_test([base.per_query["nDCG@10"][q] for q in qids], [ddp.per_query["nDCG@10"][q] for q in qids])
    summary = {
        "config": values,
        "procs": args.procs,
        "rows": rows,
        "p_ndcg10_one_vs_ddp": round(p, 4),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_ddp.json").write_text(json.dumps(summary, indent=2) + "\n")
    head = ["launch", "steps", "nDCG@10", "RR@10", "R@100", "ranks identical", "train s", "wall s (train + eval)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        m = r["metrics"]
        cells = [r["launch"], r["steps"], m["nDCG@10"], m["RR@10"], m["R@100"], r["identical_ranks"], r["train_s"]]
        cells.append(r["seconds"])
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    text = "\n".join(lines) + f"\n\nPaired t-test on nDCG@10, one process vs torchrun: p = {p:.4f}\n"
    text += (
        f"\n{os.cpu_count()} CPUs; each torchrun process gets {env['OMP_NUM_THREADS']} OpenMP thread(s), the one "
        "process all of them. Rank 0 alone evaluates, on its share of the threads. A finished run folder is re-used "
        "with the wall time recorded when it ran.\n"
    )
    (args.out / "bench_ddp.md").write_text(f"# One process vs torchrun ({values['eval_dataset']})\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
