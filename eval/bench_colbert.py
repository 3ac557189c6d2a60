"""A ColBERT student served from a ``colbert`` index directory vs a bi-encoder student, full corpus.

In one run, on one dataset:
(a) quality: nDCG@10 / R@100 of the ColBERT index (token candidates + exact MaxSim), of exact MaxSim over
    every passage (``exhaustive``), of the index with token pooling, and of the bi-encoder's flat index,
    with paired t-tests against the bi-encoder (``retrodistill eval``);
(b) cost: build seconds, index bytes per document, tokens stored;
(c) serving: p50 / p95 latency of one query over HTTP (``retrodistill serve`` on 127.0.0.1), both servers
    up at once and asked in alternation so both see the same load, and each server's resident memory.
Writes OUT/bench_colbert.{json,md} and OUT/metrics.json (the eval's).

    python eval/bench_colbert.py --colbert models/colbert-scifact --dense models/student-scifact \\
        --dataset beir/scifact/test --out eval/results/colbert/scifact
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from bench_serve import Server, pct

from retrodistill.atomic import write_json, write_text
from retrodistill.data.load import load_dataset

EXE = [sys.executable, "-m", "retrodistill.cli.main", "-q"]


def build(model: str, corpus: str, out: Path, index: str, cache: Path) -> dict:
    """Build the index directory ``out`` unless it is there; its manifest's cost figures."""
    if not (out / "manifest.json").is_file():
        args = ["index", "build", "--model", model, "--corpus", corpus, "--out", str(out), "--index", index]
        subprocess.run([*EXE, *args, "--cache-dir", str(cache)], check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    info = manifest["index"]
    return {
        "index": index,
        "build_seconds": manifest["build_seconds"],
        "index_mb": round(info["bytes"] / 2**20, 2),
        "bytes_per_doc": round(info["bytes"] / manifest["corpus"]["size"]),
        "tokens": info.get("tokens"),
    }


def latency(servers: dict[str, Server], queries: list[str], n: int) -> dict[str, dict]:
    """Milliseconds per single-query request, the servers asked in alternation; p50 / p95 and RSS."""
    times: dict[str, list[float]] = {name: [] for name in servers}
    with httpx.Client(timeout=120) as client:
        for i in range(n + 10):
            for name, server in servers.items():
                start = time.perf_counter()
                client.post(
                    server.url + "/search", json={"query": queries[i % len(queries)], "k": 10}
                ).raise_for_status()
                if i >= 10:  # warm-up
                    times[name].append(1000 * (time.perf_counter() - start))
    return {
        name: {"p50_ms": round(pct(t, 50), 1), "p95_ms": round(pct(t, 95), 1), "rss_mb": round(servers[name].rss_mb())}
        for name, t in times.items()
    }


def paired_p(a: dict[str, float], b: dict[str, float]) -> float:
    """Two-sided paired t-test p-value over the queries both have."""
    from scipy.stats import ttest_rel

    qids = sorted(set(a) & set(b))
    return float(ttest_rel([a[q] for q in qids], [b[q] for q in qids]).pvalue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--colbert", required=True, help="a ColBERT student folder")
    parser.add_argument("--dense", required=True, help="the bi-encoder student to compare with (id or folder)")
    parser.add_argument("--dataset", required=True, help="ir_datasets id or BEIR folder (its test split)")
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--work", help="index folder (default eval/runs/colbert-<out name>)")
    parser.add_argument("--pool-factor", type=int, default=2, help="token pooling of the third index (default 2)")
    parser.add_argument("--latency-queries", type=int, default=100, help="timed requests per server (default 100)")
    args = parser.parse_args()
    out = Path(args.out)
    work = Path(args.work or f"eval/runs/colbert-{out.name}")
    cache = work / "cache"
    ds = load_dataset(args.dataset)
    indexes = {
        "bi-encoder": (args.dense, work / "dense-flat", "flat"),
        "colbert": (args.colbert, work / "colbert", "colbert"),
        f"colbert-pool{args.pool_factor}": (
            args.colbert,
            work / f"colbert-pool{args.pool_factor}",
            f"colbert,pool_factor={args.pool_factor}",
        ),
    }
    cost = {name: build(model, args.dataset, path, index, cache) for name, (model, path, index) in indexes.items()}

    systems = [
        f"index:{work / 'dense-flat'},label=bi-encoder",
        "bm25s",
        f"hybrid:{work / 'dense-flat'},label=hybrid-bi-encoder",
        f"hybrid:{work / 'colbert'},label=hybrid-colbert",
        f"index:{work / 'colbert'},label=colbert",
        f"index:{work / 'colbert'},exhaustive=true,label=colbert-exhaustive",
        f"index:{work / f'colbert-pool{args.pool_factor}'},label=colbert-pool{args.pool_factor}",
    ]
    folder = work / "eval"
    shutil.rmtree(folder, ignore_errors=True)
    flags = [f"--system={s}" for s in systems]
    subprocess.run([*EXE, "eval", "--dataset", args.dataset, *flags, "--k", "100", "--output", str(folder)], check=True)
    metrics = json.loads((folder / "metrics.json").read_text())

    queries = [q.text for q in ds.judged_queries()]
    servers = {name: Server(str(path)) for name, (_, path, _) in list(indexes.items())[:2]}
    try:
        served = latency(servers, queries, args.latency_queries)
    finally:
        for server in servers.values():
            server.stop()

    per_query = {s["name"]: s["per_query"]["nDCG@10"] for s in metrics["systems"]}
    parts = {"hybrid-bi-encoder": ("bm25s", "bi-encoder"), "hybrid-colbert": ("bm25s", "colbert")}
    rows = []
    for system in metrics["systems"]:
        name = system["name"]
        figures = cost.get(name, cost["colbert"] if name.startswith("colbert") else {})
        p = system["p_values"].get("nDCG@10")
        rows.append(
            {
                "system": name,
                "nDCG@10": round(system["metrics"]["nDCG@10"], 4),
                "R@100": round(system["metrics"]["R@100"], 4),
                "p_vs_bi_encoder": None if p is None else float(p),
                "eval_seconds": system["seconds"],
                **{f"p_vs_{part}": paired_p(per_query[name], per_query[part]) for part in parts.get(name, ())},
                **figures,
                **served.get(name, {}),
            }
        )
    result = {
        "dataset": args.dataset,
        "queries": metrics["queries"],
        "documents": metrics["documents"],
        "colbert": args.colbert,
        "dense": args.dense,
        "machine": metrics.get("machine"),
        "rows": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench_colbert.json", result)
    shutil.copyfile(folder / "metrics.json", out / "metrics.json")
    write_text(out / "bench_colbert.md", render(result))
    print(render(result))


def render(result: dict) -> str:
    """The markdown table of a bench_colbert.json result."""
    rows = result["rows"]
    lines = [
        f"# ColBERT index vs bi-encoder, {result['dataset']} ({result['queries']} queries, {result['documents']} docs)",
        "",
        "| system | nDCG@10 | p vs bi-enc | R@100 | index MB | bytes/doc | build s | p50 ms | p95 ms | RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = "" if r["p_vs_bi_encoder"] is None or np.isnan(r["p_vs_bi_encoder"]) else f"{r['p_vs_bi_encoder']:.3g}"
        build_s = r.get("build_seconds", {}).get("total", "")
        cells = [
            r["system"],
            f"{r['nDCG@10']:.4f}",
            p,
            f"{r['R@100']:.4f}",
            r.get("index_mb", ""),
            r.get("bytes_per_doc", ""),
            build_s,
            r.get("p50_ms", ""),
            r.get("p95_ms", ""),
            r.get("rss_mb", ""),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [
        "",
        "colbert-exhaustive is exact MaxSim over every passage (the reference for the index's candidates);",
        "latency: one query per request, both servers up and asked in alternation.",
    ]
    for r in rows:
        others = [f"{k[5:]} p = {v:.3g}" for k, v in r.items() if k.startswith("p_vs_") and k != "p_vs_bi_encoder"]
        if others:
            lines.append(f"- {r['system']} (bm25s + that student, rrf) against each part: {', '.join(others)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
