"""Student ablation: one teacher's scores, several students, one table with the run time of each row.

    python eval/ablation.py eval/configs/students/scifact-ablation.json

The config holds the distillation keys (train/eval datasets, teacher, candidates, depth, ...) plus
``variants``: name -> StudentConfig keys (a variant with "supervised": true trains on the qrels alone,
without teacher scores: the fine-tuning baseline). Stored work is re-used: the teacher store, trained
students and cached embeddings. Results: <work_dir>/eval/ (metrics.json, runs, metrics.png) and
<work_dir>/ablation.json + ablation.md with training and evaluation seconds per row. ``--only NAME``
trains the named variants and stops (to split the training over several processes; a last run without
``--only`` trains nothing new and writes the table).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument(
        "--only", action="append", default=None, help="train only these variants, no table (repeatable)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from retrodistill.cli.configfile import load_config_file
    from retrodistill.eval.report import render_table
    from retrodistill.pipeline import DistillConfig, compare, teach
    from retrodistill.training import train_student
    from retrodistill.training.config import StudentConfig

    raw = load_config_file(args.config)
    variants: dict[str, dict] = raw.pop("variants")
    config = DistillConfig(**raw)
    work = Path(config.work_dir)
    start = time.perf_counter()
    teach(config)
    teach_seconds = time.perf_counter() - start
    students, seconds = [], {}
    for name, keys in variants.items():
        if args.only and name not in args.only:
            continue
        supervised = bool(keys.pop("supervised", False))
        student = StudentConfig(
            **{**config.student, **keys},
            dataset=config.train_dataset,
            split=config.train_split,
            store=None if supervised else str(config.store_path()),
            output=str(work / name),
        )
        model_dir = work / name / "model"
        t0 = time.perf_counter()
        if not model_dir.is_dir():
            train_student(student)
        seconds[name] = time.perf_counter() - t0
        students.append((student, model_dir))
    if args.only:
        return
    report = compare(config, students, work)
    from retrodistill.eval.report import write_outputs

    write_outputs(report, work / "eval")
    rows = []
    for result in report.results:
        train_s = _train_seconds(work / result.name) if result.name in variants else None
        rows.append(
            {
                "system": result.name,
                **{m: round(v, 4) for m, v in result.evaluation.aggregate.items()},
                "p_vs_bm25": {m: round(p, 4) for m, p in result.pvalues.items()},
                "train_s": train_s,
                "eval_s": round(result.seconds, 1),
            }
        )
    summary = {"teacher": config.teacher, "teach_s": round(teach_seconds, 1), "rows": rows}
    (work / "ablation.json").write_text(json.dumps(summary, indent=2) + "\n")
    measures = report.measures
    lines = ["| system | " + " | ".join(measures) + " | train s | eval s |", "|---" * (len(measures) + 3) + "|"]
    for row in rows:
        cells = [f"{row[m]:.4f}" for m in measures]
        lines.append(f"| {row['system']} | " + " | ".join(cells) + f" | {row['train_s'] or ''} | {row['eval_s']} |")
    (work / "ablation.md").write_text("\n".join(lines) + "\n")
    from rich.console import Console

    Console(width=200).print(render_table(report))


def _train_seconds(folder: Path) -> float | None:
    log = folder / "train_log.json"
    if not log.is_file():
        return None
    history = json.loads(log.read_text())["log_history"]
    runtime = [h["train_runtime"] for h in history if "train_runtime" in h]
    return round(runtime[-1], 1) if runtime else None


if __name__ == "__main__":
    main()
