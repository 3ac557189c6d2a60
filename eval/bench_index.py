"""Benchmark the approximate index types against exact flat search (not a test).

For synthetic clustered vectors (default 200k x 384) and for the SciFact corpus embedded with
all-MiniLM-L6-v2: build time, bytes per vector (saved file size / n), query time for a batch of
queries and recall@10 against flat, over a sweep of efSearch (hnsw) and nprobe (ivf, ivfpq).
Writes eval/results/index/bench_index.json and .md.

    python eval/bench_index.py --n 200000            # synthetic + SciFact
    python eval/bench_index.py --n 1000000 --skip-hnsw
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from retrodistill.index import INDEX_TYPES
from retrodistill.index.compare import recall_at_k, timed_search

SWEEPS = {"hnsw": ("efSearch", [16, 32, 64, 128, 256]), "ivf": ("nprobe", [1, 2, 4, 8, 16, 32, 64])}
SWEEPS["ivfpq"] = SWEEPS["ivf"]


def synthetic(n: int, dim: int, seed: int = 0, latent: int = 32, clusters: int = 256) -> np.ndarray:
    """Unit vectors on a 32-d latent mixture of 256 Gaussians, linearly mapped to ``dim`` plus small
    isotropic noise: clustered, with a low intrinsic dimension like real sentence embeddings."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(12345)
    centers = mix.standard_normal((clusters, latent)).astype(np.float32) * 2.0
    mapping = mix.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        z = centers[rng.integers(0, clusters, m)] + rng.standard_normal((m, latent)).astype(np.float32)
        x = z @ mapping + 0.1 * rng.standard_normal((m, dim)).astype(np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def file_size(index) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "i")
        return (Path(tmp) / "i").stat().st_size


def build(kind: str, vectors: np.ndarray, params: dict, train_size: int) -> tuple[object, float, float, float]:
    """The index, build seconds, saved bytes per vector, and per-vector bytes beyond the fixed part
    (centroids, codebooks: the size of the trained empty index)."""
    start = time.perf_counter()
    index = INDEX_TYPES.get(kind)(vectors.shape[1], device="cpu", **params)
    if not index.is_trained:
        rng = np.random.default_rng(1)
        sample = vectors[rng.choice(len(vectors), min(train_size, len(vectors)), replace=False)]
        index.train(sample)
    trained = time.perf_counter()
    fixed = file_size(index) if index.is_trained and kind != "hnsw" else 0
    started_add = time.perf_counter()
    for s in range(0, len(vectors), 65536):
        index.add(vectors[s : s + 65536])
    seconds = trained - start + time.perf_counter() - started_add
    size = file_size(index)
    return index, seconds, size / len(vectors), (size - fixed) / len(vectors)


def run_suite(name: str, vectors: np.ndarray, queries: np.ndarray, args: argparse.Namespace) -> dict:
    print(f"== {name}: {vectors.shape[0]} x {vectors.shape[1]}, {len(queries)} queries", flush=True)
    if args.hnsw_build_threads:
        scaling = hnsw_build_threads(vectors, args.hnsw_build_threads, args)
        if args.build_only:
            shape = {"n": len(vectors), "dim": vectors.shape[1], "queries": 0}
            return {**shape, "types": {}, "hnsw_build_threads": scaling}
    flat, flat_build, flat_bpv, _ = build("flat", vectors, {}, 0)
    exact_ids, flat_seconds = timed_search(flat, queries, 10, args.repeats)
    flat_ms = 1000 * flat_seconds / len(queries)
    print(f"flat: build {flat_build:.1f}s, {flat_ms:.3f} ms/query", flush=True)
    del flat
    gc.collect()
    suite = {"n": len(vectors), "dim": vectors.shape[1], "queries": len(queries), "types": {}}
    if args.hnsw_build_threads:
        suite["hnsw_build_threads"] = scaling
    suite["types"]["flat"] = {"build_s": round(flat_build, 2), "bytes_per_vector": round(flat_bpv, 1),
                              "ms_per_query": round(flat_ms, 4), "recall@10": 1.0}  # fmt: skip
    nlist = args.nlist or max(1, min(int(4 * np.sqrt(len(vectors))), len(vectors) // 39))
    configs = {
        "hnsw": ("hnsw", {"M": args.M, "efConstruction": args.ef_construction}),
        "ivf": ("ivf", {"nlist": nlist}),
        "ivfpq": ("ivfpq", {"nlist": nlist, "m": args.m}),
        "ivfpq+refine": ("ivfpq", {"nlist": nlist, "m": args.m, "refine": args.refine, "k_factor": args.k_factor}),
        "ivfpq+opq": ("ivfpq", {"nlist": nlist, "m": args.m, "opq": True}),
        "ivfpq+opq+refine": (
            "ivfpq",
            {"nlist": nlist, "m": args.m, "opq": True, "refine": args.refine, "k_factor": args.k_factor},
        ),
    }
    for name, (kind, params) in configs.items():
        if name in args.skip:
            continue
        index, seconds, bpv, marginal = build(kind, vectors, params, args.train_size)
        built_params = index.params
        knob, values = SWEEPS[kind]
        sweep = []
        for value in values:
            if kind != "hnsw" and value > nlist:
                continue
            index.set_search_params(**{knob: value})
            ids, secs = timed_search(index, queries, 10, args.repeats)
            ms = 1000 * secs / len(queries)
            row = {knob: value, "recall@10": round(recall_at_k(ids, exact_ids, 10), 4), "ms_per_query": round(ms, 4),
                   "speedup_vs_flat": round(flat_ms / ms, 2)}  # fmt: skip
            sweep.append(row)
            print(f"{name} {knob}={value}: recall@10 {row['recall@10']:.4f}, {ms:.4f} ms/q, x{row['speedup_vs_flat']}")
        good = [r for r in sweep if r["recall@10"] >= 0.95]
        best = max(good, key=lambda r: r["speedup_vs_flat"]) if good else None
        suite["types"][name] = {"params": built_params, "build_s": round(seconds, 2),
                                "bytes_per_vector": round(bpv, 1), "marginal_bytes_per_vector": round(marginal, 1),
                                "sweep": sweep,
                                "fastest_at_recall_0.95": best}  # fmt: skip
        if params.get("refine"):
            stored = {"flat": 4, "fp16": 2, "sq8": 1}[params["refine"]] * vectors.shape[1]
            suite["types"][name]["in_ram_bytes_per_vector"] = round(marginal - stored, 1)
            suite["types"][name]["memory_mapped_bytes_per_vector"] = stored
        print(f"{name}: build {seconds:.1f}s, {bpv:.1f} B/vector, best at recall>=0.95: {best}", flush=True)
        del index
        gc.collect()
    return suite


def hnsw_build_threads(vectors: np.ndarray, threads: list[int], args: argparse.Namespace) -> list[dict]:
    """HNSW build seconds (add every vector, as ``index build`` does) with each FAISS thread count, same
    vectors and parameters; the speed-up is against the first count."""
    import faiss

    rows = []
    for count in threads:
        faiss.omp_set_num_threads(count)
        start = time.perf_counter()
        index = INDEX_TYPES.get("hnsw")(vectors.shape[1], device="cpu", M=args.M, efConstruction=args.ef_construction)
        for s in range(0, len(vectors), 65536):
            index.add(vectors[s : s + 65536])
        seconds = time.perf_counter() - start
        rows.append({"threads": count, "build_s": round(seconds, 1), "speedup": round(rows[0]["build_s"] / seconds, 2)
                     if rows else 1.0})  # fmt: skip
        print(f"hnsw build, {count} thread(s): {seconds:.1f}s", flush=True)
        del index
        gc.collect()
    faiss.omp_set_num_threads(args.threads)
    return rows


def scifact_vectors(model: str, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    from retrodistill.data.load import load_dataset
    from retrodistill.index.encode import encode_corpus
    from retrodistill.students.bi_encoder import BiEncoder

    encoder = BiEncoder(model)
    ds = load_dataset(dataset)
    passages = encode_corpus(encoder, list(ds.corpus.values()))
    return passages, encoder.encode_queries([q.text for q in ds.judged_queries()])


def machine() -> dict:
    import faiss

    with open("/proc/cpuinfo") as handle:
        cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "faiss": faiss.__version__,
        "faiss_threads_for_search_and_build": faiss.omp_get_max_threads(),
        "load_average_start": os.getloadavg(),
        "note": "2 shared cores: other jobs (model training, tests) ran at the same time; timings are noisy",
    }


def markdown(result: dict) -> str:
    lines = ["# Index benchmark", "", f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores "
             f"(shared with other jobs; load average at start {result['machine']['load_average_start'][0]:.1f}), "
             f"faiss {result['machine']['faiss']}, {result['machine']['faiss_threads_for_search_and_build']} FAISS "
             "thread(s); query time is a batch of queries searched together, best of the repeats.", ""]  # fmt: skip
    for name, suite in result["suites"].items():
        lines += [f"## {name}: {suite['n']} x {suite['dim']}, {suite['queries']} queries (batched search, k=10)", ""]
        if suite.get("hnsw_build_threads"):
            build = f"M={result['args']['M']}, efConstruction={result['args']['ef_construction']}"
            lines += [f"HNSW build (every vector added; {build}):", "",
                      "| FAISS threads | build s | speed-up |", "|---|---|---|"]  # fmt: skip
            lines += [f"| {r['threads']} | {r['build_s']} | {r['speedup']}x |" for r in suite["hnsw_build_threads"]]
            lines.append("")
        if not suite["types"]:
            continue
        header = "| type | params | build s | bytes/vector (file / n; marginal) | best setting at recall@10 >= 0.95 "
        lines += [header + "| recall@10 | ms/query | speed-up vs flat |", "|---|---|---|---|---|---|---|---|"]
        for kind, info in suite["types"].items():
            best = info.get("fastest_at_recall_0.95") or {}
            if kind == "flat":
                best = {"recall@10": 1.0, "ms_per_query": info["ms_per_query"], "speedup_vs_flat": 1.0}
            setting = ", ".join(f"{k}={v}" for k, v in best.items() if k in ("efSearch", "nprobe")) or (
                "-" if kind == "flat" else "none reaches 0.95"
            )
            size = f"{info['bytes_per_vector']}" + (
                f"; {info['marginal_bytes_per_vector']}" if "marginal_bytes_per_vector" in info else ""
            )
            if "in_ram_bytes_per_vector" in info:
                size += (
                    f" ({info['in_ram_bytes_per_vector']} in RAM + {info['memory_mapped_bytes_per_vector']} mmapped)"
                )
            lines.append(f"| {kind} | {info.get('params', {})} | {info['build_s']} | {size} | "
                         f"{setting} | {best.get('recall@10', '-')} | {best.get('ms_per_query', '-')} | "
                         f"{best.get('speedup_vs_flat', '-')} |")  # fmt: skip
        lines.append("")
        for kind, info in suite["types"].items():
            if "sweep" in info:
                pts = "; ".join(
                    f"{next(k for k in r if k in ('efSearch', 'nprobe'))}={r.get('efSearch', r.get('nprobe'))}: "
                    f"R@10 {r['recall@10']}, {r['ms_per_query']} ms, x{r['speedup_vs_flat']}"
                    for r in info["sweep"]
                )
                lines.append(f"- {kind} sweep: {pts}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="synthetic vectors (0 = skip)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--M", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=100)
    parser.add_argument("--nlist", type=int, help="default ~4*sqrt(n)")
    parser.add_argument("--m", type=int, default=48, help="ivfpq code bytes per vector")
    parser.add_argument("--refine", default="fp16", help="ivfpq+refine: stored vectors (flat, fp16, sq8)")
    parser.add_argument("--k-factor", type=int, default=8, help="ivfpq+refine: shortlist = k * k_factor")
    parser.add_argument("--train-size", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skip", nargs="*", default=[], help="to skip: hnsw, ivf, ivfpq, ivfpq+refine, ivfpq+opq, ivfpq+opq+refine"
    )
    parser.add_argument("--scifact", default="beir/scifact/test", help="dataset for the real-corpus suite ('' = skip)")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--threads", type=int, default=1, help="FAISS OpenMP threads (1: stable on shared cores)")
    parser.add_argument(
        "--hnsw-build-threads",
        type=int,
        nargs="*",
        default=[],
        help="also time the HNSW build with each of these FAISS thread counts (e.g. 1 2)",
    )
    parser.add_argument("--build-only", action="store_true", help="with --hnsw-build-threads: only that, no search")
    parser.add_argument("--out", default="eval/results/index")
    parser.add_argument("--tag", default="", help="suffix of the result files (e.g. refine)")
    args = parser.parse_args()
    if args.build_only and not args.hnsw_build_threads:
        parser.error("--build-only times the HNSW build: give --hnsw-build-threads too, e.g. 1 2")
    import faiss

    faiss.omp_set_num_threads(args.threads)
    result = {"machine": machine(), "args": vars(args), "suites": {}}
    if args.scifact:
        passages, queries = scifact_vectors(args.model, args.scifact)
        result["suites"]["scifact"] = run_suite("scifact", passages, queries, args)
    if args.n:
        vectors = synthetic(args.n + args.queries, args.dim)
        result["suites"][f"synthetic-{args.n}"] = run_suite("synthetic", vectors[: args.n], vectors[args.n :], args)
        del vectors
    result["machine"]["load_average_end"] = os.getloadavg()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = ("" if args.n in (0, 200_000) else f"-{args.n}") + (f"-{args.tag}" if args.tag else "")
    (out / f"bench_index{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"bench_index{suffix}.md").write_text(markdown(result) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
