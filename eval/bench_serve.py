"""Benchmark the search server on 127.0.0.1 (not a test; all traffic stays on this machine).

(a) p50/p95 latency of one query over HTTP vs the bare query-encoder forward in-process;
(b) QPS at concurrency 16, micro-batched server (max_batch=32) vs naive (max_batch=1, one forward
    per request), in the same run;
(d) soak: 20,000 requests at concurrency 32 against the batched server: errors and server RSS growth.
Writes eval/results/serve/bench_serve.json and .md.

    python eval/bench_serve.py --index indexes/scifact-minilm-flat   # built first when missing
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`retrodistill serve` in a subprocess on a free 127.0.0.1 port."""

    def __init__(self, index: str, *flags: str) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        cmd = [sys.executable, "-m", "retrodistill.cli.main", "-q", "serve", index, "--port", self.url.rsplit(":")[2]]
        self.proc = subprocess.Popen([*cmd, "--log-level", "warning", *flags], env=os.environ)
        deadline = time.time() + 600
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise SystemExit("server did not become ready")

    def rss_mb(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def batch_stats(self) -> dict[str, float]:
        text = httpx.get(self.url + "/metrics").text
        count = float(re.search(r"retrodistill_batch_size_count ([0-9.e+]+)", text).group(1))
        total = float(re.search(r"retrodistill_batch_size_sum ([0-9.e+]+)", text).group(1))
        return {"batches": count, "queries": total}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def interleaved_latency(url: str, queries: list[str], n: int) -> tuple[list[float], list[float]]:
    """Per query, the bare in-process encoder forward then the same query over HTTP, alternating, so both
    see the same load on the shared cores. Milliseconds."""
    from retrodistill.students.bi_encoder import BiEncoder

    encoder = BiEncoder(MODEL)
    bare, http = [], []
    with httpx.Client(base_url=url, timeout=60) as client:
        for q in queries[:20]:
            encoder.encode_queries([q])
            client.post("/search", json={"query": q, "k": 10}).raise_for_status()
        for i in range(n):
            q = queries[i % len(queries)]
            start = time.perf_counter()
            encoder.encode_queries([q])
            bare.append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()
            client.post("/search", json={"query": q, "k": 10}).raise_for_status()
            http.append(1000 * (time.perf_counter() - start))
    return bare, http


def encoder_scaling(queries: list[str]) -> dict[str, float]:
    """In-process encode_queries time per query at batch sizes 1, 4, 16, 32 (median of 10): how much a
    bigger batch can save per query on this machine."""
    from retrodistill.students.bi_encoder import BiEncoder

    encoder = BiEncoder(MODEL)
    encoder.encode_queries(queries[:8])
    out = {}
    for size in (1, 4, 16, 32):
        times = []
        for r in range(10):
            batch = [queries[(r * size + j) % len(queries)] for j in range(size)]
            start = time.perf_counter()
            encoder.encode_queries(batch)
            times.append(time.perf_counter() - start)
        out[f"batch_{size}_ms_per_query"] = round(1000 * float(np.median(times)) / size, 2)
    return out


def warm(url: str, queries: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        for q in queries[:20]:
            client.post("/search", json={"query": q, "k": 10}).raise_for_status()


async def load(url: str, queries: list[str], total: int, concurrency: int, max_seconds: float) -> dict:
    """``total`` single-query requests from ``concurrency`` workers; stops early after ``max_seconds``."""
    counter = iter(range(total))
    errors: list[str] = []
    latencies: list[float] = []
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                start = time.perf_counter()
                try:
                    response = await client.post("/search", json={"query": queries[i % len(queries)], "k": 10})
                    if response.status_code != 200:
                        errors.append(f"status {response.status_code}")
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                latencies.append(1000 * (time.perf_counter() - start))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "seconds": round(seconds, 2),
        "qps": round(len(latencies) / seconds, 1),
        "p50_ms": round(pct(latencies, 50), 2),
        "p95_ms": round(pct(latencies, 95), 2),
    }


def soak(server: Server, queries: list[str], args: argparse.Namespace) -> dict:
    """``soak_requests`` at concurrency 32 in steps of 2000, sampling the server's RSS after each step.
    The baseline RSS is taken after a 2000-request warm-up at the same concurrency (allocator arenas
    and torch buffers for every batch shape settle there); the warm-up RSS is reported too."""
    rss_cold = server.rss_mb()
    warmup = asyncio.run(load(server.url, queries, 2000, 32, args.soak_max_seconds))
    rss_start = server.rss_mb()
    samples = [rss_start]
    total = {"requests": 0, "errors": 0, "seconds": 0.0}
    kinds: set[str] = set()
    for _ in range(0, args.soak_requests, 2000):
        part = asyncio.run(load(server.url, queries, 2000, 32, args.soak_max_seconds - total["seconds"]))
        total["requests"] += part["requests"]
        total["errors"] += part["errors"]
        total["seconds"] += part["seconds"]
        kinds.update(part["error_kinds"])
        samples.append(server.rss_mb())
        if total["seconds"] >= args.soak_max_seconds:
            break
    return {
        **total,
        "error_kinds": sorted(kinds),
        "qps": round(total["requests"] / total["seconds"], 1),
        "rss_before_warmup_mb": round(rss_cold, 1),
        "warmup_requests": warmup["requests"],
        "warmup_errors": warmup["errors"],
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(samples[-1], 1),
        "rss_growth_pct": round(100 * (samples[-1] - rss_start) / rss_start, 2),
        "rss_samples_mb": [round(x, 1) for x in samples],
        "concurrency": 32,
    }


def machine() -> dict:
    import torch

    with open("/proc/cpuinfo") as handle:
        cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_start": os.getloadavg(),
        "note": "2 shared cores; other jobs (model training, tests) ran at the same time and the load "
        "generator shares the cores with the server: absolute numbers are pessimistic and noisy",
    }


def ensure_index(path: Path, corpus: str) -> None:
    if (path / "manifest.json").is_file():
        return
    from retrodistill.index.corpus import load_corpus
    from retrodistill.index.store import build_index_dir
    from retrodistill.students.bi_encoder import BiEncoder

    build_index_dir(path, BiEncoder(MODEL), load_corpus(corpus), corpus, "flat")


def render(path: Path) -> None:
    """Re-write the markdown from an existing bench_serve.json."""
    path.with_suffix(".md").write_text(markdown(json.loads(path.read_text())) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="indexes/scifact-minilm-flat")
    parser.add_argument("--corpus", default="beir/scifact/test")
    parser.add_argument("--latency-n", type=int, default=300)
    parser.add_argument("--qps-requests", type=int, default=1500)
    parser.add_argument("--soak-requests", type=int, default=20_000)
    parser.add_argument("--soak-max-seconds", type=float, default=2400)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, server and bare forward alike")
    parser.add_argument("--only", nargs="*", default=["a", "b", "d"], help="run only these parts (a, b, d)")
    parser.add_argument("--out", default="eval/results/serve")
    args = parser.parse_args()

    from retrodistill.data.load import load_dataset

    ensure_index(Path(args.index), args.corpus)
    queries = [q.text for q in load_dataset(args.corpus).judged_queries()]
    out = Path(args.out)
    previous = out / "bench_serve.json"
    result: dict = json.loads(previous.read_text()) if previous.is_file() else {}
    result.update(machine=machine(), args=vars(args))

    parts = set(args.only)
    import torch

    torch.set_num_threads(args.threads)
    result["machine"]["torch_threads"] = args.threads
    threads = ("--threads", str(args.threads))
    if "b" in parts:
        result["encoder_scaling"] = encoder_scaling(queries)
        print("encoder", result["encoder_scaling"], flush=True)
    batched = Server(args.index, "--max-batch", "32", "--max-wait-ms", "1", *threads)
    try:
        if "a" in parts:
            bare, http = interleaved_latency(batched.url, queries, args.latency_n)
            result["a_latency"] = {
                "bare_forward_p50_ms": round(pct(bare, 50), 2),
                "bare_forward_p95_ms": round(pct(bare, 95), 2),
                "http_p50_ms": round(pct(http, 50), 2),
                "http_p95_ms": round(pct(http, 95), 2),
                "p50_ratio": round(pct(http, 50) / pct(bare, 50), 3),
                "p95_ratio": round(pct(http, 95) / pct(bare, 95), 3),
                "n": args.latency_n,
                "method": "alternating: one in-process encode_queries([q]), then POST /search for q (k=10)",
            }
            print("a", result["a_latency"], flush=True)
        if "b" in parts:
            warm(batched.url, queries)
            before = batched.batch_stats()
            qps_batched = asyncio.run(load(batched.url, queries, args.qps_requests, 16, 600))
            after = batched.batch_stats()
            qps_batched["mean_batch"] = round(
                (after["queries"] - before["queries"]) / max(after["batches"] - before["batches"], 1), 2
            )
            print("b batched", qps_batched, flush=True)
        if "d" in parts:
            warm(batched.url, queries)
            result["d_soak"] = soak(batched, queries, args)
            print("d", result["d_soak"], flush=True)
    finally:
        batched.stop()
    if "b" in parts:
        naive = Server(args.index, "--max-batch", "1", "--max-wait-ms", "0", *threads)
        try:
            warm(naive.url, queries)
            qps_naive = asyncio.run(load(naive.url, queries, args.qps_requests, 16, 600))
            print("b naive", qps_naive, flush=True)
        finally:
            naive.stop()
        result["b_throughput_c16"] = {
            "batched": qps_batched,
            "naive": qps_naive,
            "qps_ratio": round(qps_batched["qps"] / qps_naive["qps"], 2),
        }
    result["machine"]["load_average_end"] = os.getloadavg()
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_serve.json").write_text(json.dumps(result, indent=2) + "\n")
    if not {"a_latency", "b_throughput_c16", "d_soak"} <= result.keys():  # --only: the JSON holds the parts run
        print(json.dumps(result, indent=2))
        return
    (out / "bench_serve.md").write_text(markdown(result) + "\n")
    print(markdown(result))


def markdown(r: dict) -> str:
    a, b, d, m = r["a_latency"], r["b_throughput_c16"], r["d_soak"], r["machine"]
    return "\n".join(
        [
            "# Serving benchmark (SciFact flat index, all-MiniLM-L6-v2, 127.0.0.1)",
            "",
            f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
            f"Python {m['python']}. Load average {m['load_average_start'][0]:.1f} at start, "
            f"{m['load_average_end'][0]:.1f} at end: {m['note']}.",
            "",
            "| benchmark | result | target |",
            "|---|---|---|",
            f"| (a) one query, p50 / p95: bare encoder forward | {a['bare_forward_p50_ms']} / "
            f"{a['bare_forward_p95_ms']} ms | |",
            f"| (a) one query, p50 / p95: HTTP POST /search (k=10) | {a['http_p50_ms']} / {a['http_p95_ms']} ms | |",
            f"| (a) HTTP / bare, p50 (p95) | {a['p50_ratio']}x ({a['p95_ratio']}x) | p50 <= 1.3x |",
            f"| (b) QPS at concurrency 16, micro-batched (mean batch {b['batched']['mean_batch']}) | "
            f"{b['batched']['qps']} (p50 {b['batched']['p50_ms']} ms) | |",
            f"| (b) QPS at concurrency 16, naive max_batch=1 | {b['naive']['qps']} (p50 {b['naive']['p50_ms']} ms) | |",
            f"| (b) batched / naive | {b['qps_ratio']}x | >= 3x |",
            f"| (d) soak at concurrency 32: requests, errors | {d['requests']}, {d['errors']} | 20000, 0 |",
            f"| (d) soak QPS | {d['qps']} | |",
            f"| (d) server RSS after a 2000-request warm-up -> end | {d['rss_start_mb']} -> {d['rss_end_mb']} MiB "
            f"({d['rss_growth_pct']:+.2f}%) | <= 5% |",
            f"| (d) server RSS before the warm-up | {d.get('rss_before_warmup_mb')} MiB | |",
            "",
            f"RSS samples every 2000 requests (MiB): {d['rss_samples_mb']}",
            "",
            f"Encoder cost per query by batch size (in-process, {r['args']['threads']} torch thread(s)): "
            f"{r.get('encoder_scaling')}. Micro-batching can only save the per-request overhead and the part of "
            "the forward that does not grow with the batch; see README.md beside this file.",
        ]
    )


if __name__ == "__main__":
    main()
