"""Student query latency vs the teacher re-ranking the BM25 top-100, measured in one run.

Student: encode one query + exact FAISS search over the corpus embeddings (the serving path).
Teacher: BM25 top-100 for the query, then the cross-encoder teacher (retrodistill's, from a teacher spec,
so its batching and dtype apply) scoring the 100 (query, passage) pairs: the re-ranking path the student
replaces. Both per query, one query at a time, same machine, same process. Latency depends on the
architecture, not on trained weights, so any checkpoint of the same architecture gives the same figures.

    python eval/bench_latency.py --dataset beir/scifact/test --student MODEL \
        --teacher "cross-encoder:CE_MODEL,max_length=256" --queries 50
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beir/scifact/test")
    parser.add_argument("--student", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument(
        "--teacher",
        default="cross-encoder:sentence-transformers/all-MiniLM-L6-v2,max_length=256,dtype=float32",
        help="teacher spec (cross-encoder:MODEL[,max_length=,dtype=,batch_size=])",
    )
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--output", default="eval/results/students/latency.json")
    args = parser.parse_args()

    import torch
    from tqdm.auto import tqdm

    from retrodistill.data.load import load_dataset
    from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever
    from retrodistill.retrieval.dense import DenseRetriever

    ds = load_dataset(args.dataset)
    queries = ds.judged_queries()[: args.queries]
    dense = DenseRetriever(args.student, show_progress=True)
    dense.index(ds.corpus)
    bm25 = BM25sRetriever()
    bm25.index(ds.corpus)
    from retrodistill.teachers import build_teacher

    teacher = build_teacher(args.teacher)

    def student_once(q):
        return dense.retrieve([q], k=10, show_progress=False)

    def teacher_once(q):
        hits = bm25.retrieve([q], k=args.depth, show_progress=False)[q.query_id]
        order = sorted(hits, key=lambda d: -hits[d])
        return teacher.score({q.query_id: q}, {q.query_id: order}, ds.corpus, show_progress=False)

    for fn in (student_once, teacher_once):  # warm-up
        fn(queries[0])
    timings: dict[str, list[float]] = {"student": [], "teacher": []}
    with torch.inference_mode():
        for q in tqdm(queries, desc="latency (student + teacher per query)", unit="q"):
            for name, fn in (("student", student_once), ("teacher", teacher_once)):
                start = time.perf_counter()
                fn(q)
                timings[name].append((time.perf_counter() - start) * 1000)
    summary = {
        name: {"p50_ms": statistics.median(v), "mean_ms": statistics.fmean(v), "p95_ms": sorted(v)[int(0.95 * len(v))]}
        for name, v in timings.items()
    }
    result = {
        "dataset": args.dataset,
        "queries": len(queries),
        "student": args.student,
        "teacher": f"{args.teacher} re-ranking bm25s top-{args.depth}",
        "latency": summary,
        "teacher_over_student_p50": summary["teacher"]["p50_ms"] / summary["student"]["p50_ms"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(),
        },
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
