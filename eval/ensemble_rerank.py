"""A teacher ensemble re-ranking BM25's top ``depth``, next to each member: the row ``eval/labelfree.py`` adds.

    python eval/ensemble_rerank.py beir/scifact/test eval/results/labelfree/teacher-ensemble/scifact \\
        --teacher bi-encoder:sentence-transformers/all-MiniLM-L6-v2 --teacher bm25

Each member re-ranks the bm25s top ``depth`` through ``retrodistill eval`` (its runs, metrics.json and
config.json go to OUT); the members' runs are then fused over the candidates they scored
(``teachers.ensemble.fuse_reranked``), by z-score and by reciprocal rank, and every row is paired against
bm25s. Writes ``OUT/ensemble.json`` and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("out", type=Path)
    parser.add_argument("--teacher", action="append", required=True, help="teacher spec (repeatable)")
    parser.add_argument("--weight", action="append", type=float, help="one per teacher (default all 1)")
    parser.add_argument("--depth", type=int, default=100)
    args = parser.parse_args()

    from retrodistill.atomic import write_json
    from retrodistill.eval.config import EvalConfig
    from retrodistill.eval.harness import load_data, run_evaluation
    from retrodistill.eval.measures import evaluate
    from retrodistill.eval.report import write_outputs
    from retrodistill.eval.significance import paired_test
    from retrodistill.teachers.ensemble import fuse_reranked

    config = EvalConfig(dataset=args.dataset, candidates="bm25s", depth=args.depth, systems=args.teacher, plot=False)
    report = run_evaluation(config)
    write_outputs(report, args.out)
    first = next(r for r in report.results if r.name == "bm25s")
    members = [r for r in report.results if r.name != "bm25s"]
    qrels = load_data(config).qrels
    measures = list(first.evaluation.aggregate)
    qids = sorted(qrels)
    fused = {
        f"ensemble ({method})": fuse_reranked([m.run for m in members], first.run, args.depth, args.weight, method)
        for method in ("zscore", "rrf")
    }
    evaluations = {r.name: r.evaluation for r in report.results}
    evaluations |= {name: evaluate(run, qrels, measures) for name, run in fused.items()}
    rows = []
    base = evaluations["bm25s"].per_query["nDCG@10"]
    for name, ev in evaluations.items():
        per = ev.per_query["nDCG@10"]
        row = {"system": name, **{m: round(v, 4) for m, v in ev.aggregate.items()}}
        if name != "bm25s":
            row["p_vs_bm25s"] = float(f"{paired_test([per[q] for q in qids], [base[q] for q in qids]):.3g}")
            row["better"] = sum(per[q] > base[q] for q in qids)
            row["worse"] = sum(per[q] < base[q] for q in qids)
        rows.append(row)
    out = {"dataset": args.dataset, "depth": args.depth, "teachers": args.teacher, "weights": args.weight, "rows": rows}
    write_json(args.out / "ensemble.json", out)
    header = ["system", *measures, "p (nDCG@10 vs bm25s)", "better / worse"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        cells = [row["system"], *(f"{row[m]:.4f}" for m in measures)]
        cells += [
            f"{row['p_vs_bm25s']:.2g}" if "p_vs_bm25s" in row else "",
            f"{row.get('better', '')} / {row.get('worse', '')}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
