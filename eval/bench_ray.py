"""Ray Data executor against the plain local path, in one run on this machine (not a test).

Corpus encoding (all-MiniLM-L6-v2 over the first N SciFact passages, shards of 64) and teacher scoring
(bi-encoder teacher over BM25 top-20 of SciFact test queries, chunks of 64 pairs): local, then Ray with
1 actor and 2 actors (1 CPU each). Reports seconds, throughput, the ratio to local, Ray's start-up (ray.init)
and the driver's peak RSS. Writes eval/results/scale/bench_ray.json and .md.

    python eval/bench_ray.py --docs 1024 --queries 60
    python eval/bench_ray.py --docs 1024 --queries 60 --gen-passages 24   # also pseudo-query generation

``--gen-passages N`` adds a third stage: one pseudo-query for each of N sampled passages with the default
generator (batches of 4, so 2 actors have work to share), timed the same way, with the generated texts
compared against the local run's (same seed: they should be equal).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from retrodistill.data.load import load_dataset
from retrodistill.executors import make_executor
from retrodistill.index.encode import encode_corpus
from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever
from retrodistill.students.bi_encoder import BiEncoder
from retrodistill.teachers import build_teacher

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="beir/scifact/test")
    parser.add_argument("--docs", type=int, default=1024)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--gen-passages", type=int, default=0, help="also generate for N passages (0 = skip)")
    parser.add_argument("--out", default="eval/results/scale")
    args = parser.parse_args()
    import ray

    ds = load_dataset(args.dataset)
    docs = list(ds.corpus.values())[: args.docs]
    bm25 = BM25sRetriever()
    bm25.index(ds.corpus)
    run = bm25.retrieve(ds.judged_queries()[: args.queries], k=20, show_progress=False)
    candidates = {q: sorted(d, key=lambda x: -d[x]) for q, d in run.items()}
    pairs = sum(len(v) for v in candidates.values())
    encoder = BiEncoder(MODEL)

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    startup = time.perf_counter() - t0
    rows: list[dict] = []
    generated: dict[str, dict] = {}
    for label, executor in (
        ("local", None),
        ("ray, 1 actor", make_executor("ray", {"actors": 1})),
        ("ray, 2 actors", make_executor("ray", {"actors": 2})),
    ):
        with tempfile.TemporaryDirectory() as cache:
            t = time.perf_counter()
            encode_corpus(encoder, docs, cache, shard_size=64, show_progress=False, executor=executor)
            encode_s = time.perf_counter() - t
        teacher = build_teacher(f"bi-encoder:{MODEL}")
        teacher.chunk_size, teacher.executor = 64, executor
        t = time.perf_counter()
        teacher.score(ds.queries, candidates, ds.corpus, show_progress=False)
        teach_s = time.perf_counter() - t
        rows.append(
            {
                "executor": label,
                "encode_s": round(encode_s, 1),
                "docs_per_s": round(len(docs) / encode_s, 1),
                "teach_s": round(teach_s, 1),
                "pairs_per_s": round(pairs / teach_s, 1),
            }
        )
        if args.gen_passages:
            rows[-1].update(generate(ds, args.gen_passages, executor, generated))
        print(json.dumps(rows[-1]), flush=True)
    ray.shutdown()
    base = rows[0]
    for r in rows:
        r["encode_vs_local"] = round(base["encode_s"] / r["encode_s"], 2)
        r["teach_vs_local"] = round(base["teach_s"] / r["teach_s"], 2)
        if "generate_s" in r:
            r["generate_vs_local"] = round(base["generate_s"] / r["generate_s"], 2)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    meta = {
        "dataset": args.dataset,
        "docs": len(docs),
        "pairs": pairs,
        "ray_init_s": round(startup, 1),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "driver_peak_rss_gib": round(peak, 2),
        "ray": ray.__version__,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_ray.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    lines = [
        f"# Ray Data executor vs local ({meta['cpus']} CPUs, ray {ray.__version__})",
        "",
        f"Encoding {len(docs)} {args.dataset} passages (shards of 64) and bi-encoder teacher scoring of {pairs} "
        f"pairs (BM25 top 20, chunks of 64). `ray.init` took {startup:.1f} s; each Ray stage also starts its "
        f"actors (model load). Driver peak RSS {peak:.2f} GiB. Ratio = local seconds / this row's (higher = faster).",
        "",
        "| executor | encode s | docs/s | x local | teach s | pairs/s | x local |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['executor']} | {r['encode_s']} | {r['docs_per_s']} | {r['encode_vs_local']} | "
            f"{r['teach_s']} | {r['pairs_per_s']} | {r['teach_vs_local']} |"
        )
    if args.gen_passages:
        lines += [
            "",
            f"Pseudo-query generation, one query for each of {args.gen_passages} sampled passages (default "
            "generator, batches of 4; the model loads inside the timed call: once here, once per actor there):",
            "",
            "| executor | generate s | queries/s | x local | same texts as local |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['executor']} | {r['generate_s']} | {r['queries_per_s']} | {r['generate_vs_local']} | "
                f"{r['same_texts_as_local']} |"
            )
    (out / "bench_ray.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def generate(ds, n: int, executor, generated: dict[str, dict]) -> dict:
    """One query per sampled passage into a fresh store; ``generated`` keeps each executor's texts so the
    Ray rows can be compared with the local one."""
    from retrodistill.generation.generator import QueryGenerator, sample_passages
    from retrodistill.generation.store import QueryStore

    generator = QueryGenerator(batch_size=4)
    passages = sample_passages(ds.corpus, n, 0)
    with tempfile.TemporaryDirectory() as tmp, QueryStore(Path(tmp) / "q.sqlite", generator.spec) as store:
        t = time.perf_counter()
        generator.generate(passages, 1, store, show_progress=False, executor=executor)
        seconds = time.perf_counter() - t
        texts = dict(((d, k), q) for d, k, q in store._connect(create=False).execute(
            "SELECT doc_id, sample, text FROM attempts"))  # fmt: skip
    key = "local" if executor is None else f"ray{len(generated)}"
    generated[key] = texts
    same = texts == generated.get("local")
    return {"generate_s": round(seconds, 1), "queries_per_s": round(n / seconds, 3), "same_texts_as_local": same}


if __name__ == "__main__":
    main()
