"""What a label-free run's training queries offer the student, next to another run's (e.g. real queries).

    python eval/labelfree_diagnose.py --qrels beir/scifact/test \
        eval/runs/labelfree-scifact/real-queries eval/runs/labelfree-scifact eval/runs/labelfree-scifact-mix

For each distill work folder (its fused ``teacher_scores.sqlite`` and member stores under ``teachers/``):
- **disagreement**: how often the fused teacher's top candidate differs from the first member's (the
  bi-encoder, i.e. the init student's own cosine), and KL(teacher || init) over each query's candidates
  (teacher scores as logits, the cosine x ``--scale``), the signal the student's KL term can learn from;
- **coverage**: the share of the evaluation set's relevant documents that appear among any training
  query's candidates, and among the teacher's top candidates (the positives of ``teacher-top`` groups):
  a document no training query reaches is one the student only sees by chance.

Prints a table and writes JSON with ``--out``. Reads only; no model is loaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _kl(teacher: np.ndarray, student: np.ndarray) -> float:
    p = np.exp(teacher - teacher.max())
    p /= p.sum()
    log_q = student - student.max()
    log_q = log_q - np.log(np.exp(log_q).sum())
    return float((p * (np.log(np.clip(p, 1e-12, None)) - log_q)).sum())


def diagnose(work: Path, relevant: set[str], scale: float) -> dict[str, float | int | str]:
    from retrodistill.teachers.store import ScoreStore

    with ScoreStore.open(work / "teacher_scores.sqlite") as store:
        fused = store.run()
    member = sorted((work / "teachers").glob("0-*.sqlite"))[0]
    with ScoreStore.open(member) as store:
        init = store.run()
    differs, kls, candidates, tops = [], [], set(), set()
    for qid, scores in fused.items():
        docs = sorted(d for d in scores if d in init.get(qid, {}))
        candidates.update(scores)
        tops.add(max(scores, key=lambda d: (scores[d], d)))
        if len(docs) < 2:
            continue
        t = np.array([scores[d] for d in docs])
        s = np.array([init[qid][d] * scale for d in docs])
        differs.append(docs[int(t.argmax())] != docs[int(s.argmax())])
        kls.append(_kl(t, s))
    return {
        "work": str(work),
        "queries": len(fused),
        "member": member.stem,
        "top1_differs": round(float(np.mean(differs)), 4),
        "kl_teacher_init": round(float(np.mean(kls)), 4),
        "candidate_docs": len(candidates),
        "relevant_covered": round(len(relevant & candidates) / len(relevant), 4) if relevant else 0.0,
        "relevant_teacher_top": round(len(relevant & tops) / len(relevant), 4) if relevant else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", nargs="+", type=Path, help="distill work folders")
    parser.add_argument("--qrels", required=True, help="evaluation set whose relevant documents count (id or folder)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--scale", type=float, default=20.0, help="cosine x scale = the init student's logit")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from retrodistill.data.load import load_dataset

    dataset = load_dataset(args.qrels, args.split)
    relevant = {d for judged in dataset.qrels.values() for d, g in judged.items() if g > 0}
    rows = [diagnose(work, relevant, args.scale) for work in args.work]
    print(f"{len(relevant)} relevant documents in {args.qrels} ({args.split})")
    print(
        "| work | queries | top-1 differs | KL(teacher || init) | candidate docs | relevant covered | relevant top-1 |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['work']} | {r['queries']} | {r['top1_differs']:.2f} | {r['kl_teacher_init']:.3f} | "
            f"{r['candidate_docs']} | {r['relevant_covered']:.2f} | {r['relevant_teacher_top']:.2f} |"
        )
    if args.out:
        args.out.write_text(json.dumps({"qrels": args.qrels, "split": args.split, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
