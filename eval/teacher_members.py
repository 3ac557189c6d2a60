"""How each teacher member of a label-free run ranks its training queries' source passages, and how far
the members (and two runs' fused teachers) agree.

    python eval/teacher_members.py eval/runs/labelfree-scifact/titles-400-ql \
        --train eval/runs/titles-scifact-400 --split generated \
        --compare eval/runs/labelfree-scifact/titles-400 --out eval/results/labelfree/titles-ql/members.json

For a work folder (member stores under ``teachers/``, the fused ``teacher_scores.sqlite``) and the training
set whose qrels judge each query against its source passage: per store, the share of queries whose source
is ranked first / in the top 3 of its candidates and its mean rank (a generator scoring its own samples
puts them first far more often than the retrievers do: ``scifact-ql.md``). Per pair of members, and
between this run's fused teacher and ``--compare``'s: the share of queries whose top candidate differs and
the mean Spearman correlation over the shared candidates. Reads only; no model is loaded.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np


def _runs(work: Path) -> dict[str, dict[str, dict[str, float]]]:
    from retrodistill.teachers.store import ScoreStore

    runs = {}
    for path in [*sorted((work / "teachers").glob("*.sqlite")), work / "teacher_scores.sqlite"]:
        with ScoreStore.open(path) as store:
            runs["fused" if path.parent == work else path.stem] = store.run()
    return runs


def source_ranks(run: dict[str, dict[str, float]], source: dict[str, str]) -> dict[str, float]:
    ranks = []
    for qid, scores in run.items():
        if source.get(qid) in scores:
            order = sorted(scores, key=lambda d: (-scores[d], d))
            ranks.append(order.index(source[qid]) + 1)
    r = np.array(ranks)
    return {
        "queries": len(r),
        "first": round(float((r == 1).mean()), 3),
        "top3": round(float((r <= 3).mean()), 3),
        "mean_rank": round(float(r.mean()), 2),
    }


def agreement(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> dict[str, float]:
    from scipy.stats import spearmanr

    differs, rhos = [], []
    for qid in sorted(set(a) & set(b)):
        docs = sorted(set(a[qid]) & set(b[qid]))
        if len(docs) < 2:
            continue
        x, y = [a[qid][d] for d in docs], [b[qid][d] for d in docs]
        differs.append(docs[int(np.argmax(x))] != docs[int(np.argmax(y))])
        rho = spearmanr(x, y).statistic
        if np.isfinite(rho):
            rhos.append(rho)
    return {
        "queries": len(differs),
        "top1_differs": round(float(np.mean(differs)), 3),
        "spearman": round(float(np.mean(rhos)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="a distill work folder")
    parser.add_argument("--train", required=True, help="the training set (id or folder) whose qrels name each source")
    parser.add_argument("--split", default="generated")
    parser.add_argument("--compare", type=Path, help="another work folder whose fused teacher is compared")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from retrodistill.data.load import load_dataset

    qrels = load_dataset(args.train, split=args.split).qrels
    source = {q: max(judged, key=judged.get) for q, judged in qrels.items() if judged}
    runs = _runs(args.work)
    result: dict = {"work": str(args.work), "source_rank": {n: source_ranks(r, source) for n, r in runs.items()}}
    members = [n for n in runs if n != "fused"]
    result["agreement"] = {f"{a} / {b}": agreement(runs[a], runs[b]) for a, b in itertools.combinations(members, 2)}
    if args.compare:
        other = _runs(args.compare)["fused"]
        result["agreement"][f"fused / fused of {args.compare.name}"] = agreement(runs["fused"], other)
    print("| store | source first | in top 3 | mean source rank |\n|---|---|---|---|")
    for name, row in result["source_rank"].items():
        print(f"| {name} | {row['first']:.3f} | {row['top3']:.3f} | {row['mean_rank']:.2f} |")
    print("\n| pair | top-1 differs | mean Spearman |\n|---|---|---|")
    for pair, row in result["agreement"].items():
        print(f"| {pair} | {row['top1_differs']:.3f} | {row['spearman']:.3f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
