"""What a label-free run's training queries offer the student, next to another run's (e.g. real queries).

    python eval/labelfree_diagnose.py --qrels beir/scifact/test \
        eval/runs/labelfree-scifact/real-queries eval/runs/labelfree-scifact eval/runs/labelfree-scifact-mix

For each distill work folder (its fused ``teacher_scores.sqlite`` and member stores under ``teachers/``):
- **disagreement**: how often the fused teacher's top candidate differs from the first member's (the
  bi-encoder, i.e. the init student's own cosine), and KL(teacher || init) over each query's candidates
  (teacher scores as logits, the cosine x ``--scale``), the signal the student's KL term can learn from;
- **coverage**: the share of the evaluation set's relevant documents that appear among any training
  query's candidates, and among the teacher's top candidates (the positives of ``teacher-top`` groups):
  a document no training query reaches is one the student only sees by chance;
- **gain by coverage** (when the folder holds the evaluation's runs, ``eval/student.trec``, ``init.trec``
  and ``bm25s.trec``): the student's nDCG@10 against its init and BM25 on two parts of the evaluation
  queries, those with a relevant document that was some training query's teacher top candidate and the
  rest, with paired t-test p-values. A gain only on the first part is the documents learned, not relevance;
- **label overlap** (with ``--train-qrels``, e.g. ``beir/scifact/train``): the share of evaluation queries
  with a relevant document that is also relevant to a training query, and of relevant documents shared -
  how much a run on the real training queries can win by learning documents rather than relevance.

Prints tables and writes JSON with ``--out``. Reads only; no model is loaded.
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


def _split_gain(work: Path, qrels: dict[str, dict[str, int]], tops: set[str]) -> dict[str, dict[str, float]] | None:
    """Mean nDCG@10 of student / init / BM25 on the evaluation queries whose relevant documents include a
    training query's teacher top candidate ("covered") and on the rest, with the student's p-values."""
    from retrodistill.data.trec import read_run
    from retrodistill.eval.measures import evaluate
    from retrodistill.eval.significance import paired_test

    names = ("student", "init", "bm25s")
    if not all((work / "eval" / f"{n}.trec").is_file() for n in names):
        return None
    per_query = {
        n: evaluate(read_run(work / "eval" / f"{n}.trec"), qrels, ["nDCG@10"]).per_query["nDCG@10"] for n in names
    }
    covered = {q for q, judged in qrels.items() if any(g > 0 and d in tops for d, g in judged.items())}
    out = {}
    for part, qids in (("covered", sorted(covered)), ("rest", sorted(set(qrels) - covered))):
        values = {n: [per_query[n][q] for q in qids] for n in names}
        row: dict[str, float] = {"queries": len(qids)}
        row.update({n: round(float(np.mean(v)), 4) if qids else 0.0 for n, v in values.items()})
        row["p_vs_init"] = float(f"{paired_test(values['student'], values['init']):.3g}")
        row["p_vs_bm25s"] = float(f"{paired_test(values['student'], values['bm25s']):.3g}")
        out[part] = row
    return out


def _label_overlap(qrels: dict[str, dict[str, int]], train: dict[str, dict[str, int]]) -> dict[str, float]:
    train_relevant = {d for judged in train.values() for d, g in judged.items() if g > 0}
    relevant = {q: {d for d, g in judged.items() if g > 0} for q, judged in qrels.items()}
    relevant = {q: docs for q, docs in relevant.items() if docs}
    docs = set().union(*relevant.values())
    return {
        "queries": len(relevant),
        "queries_sharing": sum(1 for d in relevant.values() if d & train_relevant),
        "relevant_shared": len(docs & train_relevant) / len(docs),
    }


def diagnose(
    work: Path, relevant: set[str], scale: float, qrels: dict[str, dict[str, int]] | None = None
) -> dict[str, object]:
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
        "gain_by_coverage": _split_gain(work, qrels, tops) if qrels else None,
    }


def _print_rows(rows: list[dict]) -> None:
    print(
        "| work | queries | top-1 differs | KL(teacher || init) | candidate docs | relevant covered | relevant top-1 |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['work']} | {r['queries']} | {r['top1_differs']:.2f} | {r['kl_teacher_init']:.3f} | "
            f"{r['candidate_docs']} | {r['relevant_covered']:.2f} | {r['relevant_teacher_top']:.2f} |"
        )
    split = [r for r in rows if r["gain_by_coverage"]]
    if split:
        print(
            "\nnDCG@10 on the evaluation queries with a relevant document that a training query's teacher ranked"
            " first (covered) and on the rest; p: paired t-test of the student"
        )
        print("| work | part | queries | student | init | BM25 | p vs init | p vs BM25 |")
        print("|---|---|---|---|---|---|---|---|")
        for r in split:
            for part, g in r["gain_by_coverage"].items():
                print(
                    f"| {r['work']} | {part} | {g['queries']} | {g['student']:.4f} | {g['init']:.4f} | "
                    f"{g['bm25s']:.4f} | {g['p_vs_init']:.3g} | {g['p_vs_bm25s']:.3g} |"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", nargs="*", type=Path, help="distill work folders")
    parser.add_argument("--qrels", required=True, help="evaluation set whose relevant documents count (id or folder)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--scale", type=float, default=20.0, help="cosine x scale = the init student's logit")
    parser.add_argument(
        "--train-qrels", help="training set (id or folder) whose judged documents overlap the evaluation's"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from retrodistill.data.load import load_dataset

    dataset = load_dataset(args.qrels, args.split)
    relevant = {d for judged in dataset.qrels.values() for d, g in judged.items() if g > 0}
    rows = [diagnose(work, relevant, args.scale, dataset.qrels) for work in args.work]
    print(f"{len(relevant)} relevant documents in {args.qrels} ({args.split})")
    if rows:
        _print_rows(rows)
    overlap = _label_overlap(dataset.qrels, load_dataset(args.train_qrels, "train").qrels) if args.train_qrels else None
    if overlap:
        print(
            f"\nlabel overlap with {args.train_qrels}: {overlap['queries_sharing']} of {overlap['queries']} evaluation"
            f" queries ({overlap['queries_sharing'] / overlap['queries']:.2f}) have a relevant document that a training"
            f" query also has; {overlap['relevant_shared']:.2f} of the relevant documents are shared"
        )
    if args.out:
        out = {"qrels": args.qrels, "split": args.split, "train_qrels": args.train_qrels, "label_overlap": overlap}
        args.out.write_text(json.dumps({**out, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
