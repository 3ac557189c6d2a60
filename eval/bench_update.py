"""Index updates against fresh builds on a real corpus (not a test).

For each index type: build an index directory of the first half of the corpus, ``index add`` the second
half, ``index delete`` a tenth of all documents (every tenth doc id), and compare with a fresh flat build
of the documents that remain, in the same order: for flat, whether ids agree exactly and the largest
score difference; for every type, recall@10 against that flat build and nDCG@10 on the test queries.
Times: the add (encoding only the new half) and the delete against a fresh build of the same index
type from an empty embedding cache. Writes eval/results/index/bench_update.json and .md.

    python eval/bench_update.py --dataset beir/scifact/test
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from retrodistill.data.load import load_dataset
from retrodistill.eval.measures import evaluate
from retrodistill.index.compare import recall_at_k
from retrodistill.index.store import build_index_dir, load_index_dir
from retrodistill.index.update import add_documents, delete_documents
from retrodistill.students.bi_encoder import BiEncoder

TYPES = {"flat": {}, "hnsw": {"M": 32, "efSearch": 128}, "ivf": {"nprobe": 16}}


def search(folder: Path, queries: np.ndarray, qids: list[str], k: int = 100):
    store = load_index_dir(folder, device="cpu")
    scores, rows = store.index.search(queries, k)
    ids = [[store.ids[r] for r in row if r >= 0] for row in rows]
    run = {
        q: {d: float(s) for d, s in zip(row, srow, strict=False)}
        for q, row, srow in zip(qids, ids, scores, strict=True)
    }
    return ids, scores, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beir/scifact/test")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--out", default="eval/results/index")
    args = parser.parse_args()

    ds = load_dataset(args.dataset)
    docs = list(ds.corpus.values())
    half = len(docs) // 2
    gone = {d.doc_id for d in docs[::10]}
    kept = {d.doc_id: d for d in docs if d.doc_id not in gone}
    encoder = BiEncoder(args.model)
    judged = ds.judged_queries()
    qids = [q.query_id for q in judged]
    queries = encoder.encode_queries([q.text for q in judged])
    work = Path(tempfile.mkdtemp(prefix="bench-update-"))
    cache = work / "cache"
    rows = []
    try:
        started = time.perf_counter()
        fresh_flat = build_index_dir(work / "fresh-flat", encoder, kept, args.dataset, "flat", cache_dir=work / "c0")
        flat_seconds = time.perf_counter() - started
        flat_ids, flat_scores, flat_run = search(fresh_flat, queries, qids)
        for kind, params in TYPES.items():
            folder = work / f"updated-{kind}"
            first = {d.doc_id: d for d in docs[:half]}
            build_index_dir(folder, encoder, first, args.dataset, kind, params, cache_dir=cache)
            t0 = time.perf_counter()
            add_documents(folder, encoder, docs[half:], cache_dir=cache)
            t1 = time.perf_counter()
            delete_documents(folder, sorted(gone))
            t2 = time.perf_counter()
            if kind == "flat":
                fresh_seconds = flat_seconds
            else:
                t3 = time.perf_counter()
                build_index_dir(
                    work / f"fresh-{kind}", encoder, kept, args.dataset, kind, params, cache_dir=work / f"c-{kind}"
                )
                fresh_seconds = time.perf_counter() - t3
            ids, scores, run = search(folder, queries, qids)
            lookup: dict[str, int] = {}
            as_int = [[lookup.setdefault(d, len(lookup)) for d in row[:10]] for row in ids]
            truth = [[lookup.setdefault(d, len(lookup)) for d in row[:10]] for row in flat_ids]
            row = {
                "index": kind,
                "docs_after": len(kept),
                "add_seconds": round(t1 - t0, 1),
                "delete_seconds": round(t2 - t1, 2),
                "fresh_build_seconds": round(fresh_seconds, 1),
                "recall@10_vs_fresh_flat": round(recall_at_k(np.array(as_int), np.array(truth), 10), 4),
                "nDCG@10": round(evaluate(run, ds.qrels, ["nDCG@10"]).aggregate["nDCG@10"], 4),
                "deleted_returned": sum(d in gone for row_ in ids for d in row_),
            }
            if kind == "flat":
                row["ids_identical"] = ids == flat_ids
                row["max_score_diff"] = float(np.abs(scores - flat_scores).max())
            rows.append(row)
            print(json.dumps(row), flush=True)
        fresh_ndcg = evaluate(flat_run, ds.qrels, ["nDCG@10"]).aggregate["nDCG@10"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "dataset": args.dataset,
        "model": args.model,
        "docs": len(docs),
        "added": len(docs) - half,
        "deleted": len(gone),
        "fresh_flat_nDCG@10": round(fresh_ndcg, 4),
        "machine": platform.processor() or platform.machine(),
    }
    (out / "bench_update.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    lines = [
        f"# Index updates on {args.dataset} ({len(docs)} docs, {args.model})",
        "",
        f"Built on the first {half} docs, `index add` of the other {len(docs) - half}, `index delete` of {len(gone)} "
        f"(every tenth); compared with a fresh flat build of the {len(kept)} that remain (nDCG@10 {fresh_ndcg:.4f}). "
        "Add = encoding the new half + adding (flat, the first type; the others find that half's embeddings in "
        "the cache, so theirs is adding only); fresh build = encoding all remaining docs + indexing, empty cache. "
        "IVF keeps the cells it trained on the first half.",
        "",
        "| index | add s | delete s | fresh build s | recall@10 vs fresh flat | nDCG@10 | deleted docs returned "
        "| flat: ids identical, max score diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        same = f"{r['ids_identical']}, {r['max_score_diff']:.1e}" if "ids_identical" in r else ""
        lines.append(
            f"| {r['index']} | {r['add_seconds']} | {r['delete_seconds']} | {r['fresh_build_seconds']} | "
            f"{r['recall@10_vs_fresh_flat']:.4f} | {r['nDCG@10']:.4f} | {r['deleted_returned']} | {same} |"
        )
    (out / "bench_update.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
