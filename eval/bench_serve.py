"""Benchmark the search server on 127.0.0.1 (not a test; all traffic stays on this machine).

For each system - naive (max_batch=1, one forward per request) and micro-batched (max_batch=32) servers
on each inference backend (torch, onnx, onnx-int8, openvino, openvino-bf16) - in one run: nDCG@10 of what it
serves on SciFact test, QPS and p50/p95 latency at concurrency 1/16/32, and (batched) p50 over HTTP against the bare
in-process forward of the same backend. Then a soak: 20,000 requests at concurrency 32 against a batched
server: errors and server RSS growth after a 2,000-request warm-up.
Writes eval/results/serve/bench_serve.json and .md.

    python eval/bench_serve.py --index indexes/scifact-minilm-flat   # built first when missing
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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


def interleaved_latency(url: str, queries: list[str], n: int, backend: str) -> dict[str, list[float]]:
    """Per query, in turn: the bare in-process encoder forward (same backend as the server), the query over
    HTTP with httpx, and again with the standard library's http.client (a client with less overhead of
    its own), so all see the same load on the shared cores. Also the server's own time for the request
    (``latency_ms``: the route's work, index search and doc store included, HTTP parsing excluded).
    Milliseconds."""
    import http.client

    from retrodistill.students.bi_encoder import BiEncoder

    encoder = BiEncoder(MODEL, backend=backend)
    out: dict[str, list[float]] = {"bare": [], "httpx": [], "stdlib": [], "server": []}
    host, port = url.rsplit("//", 1)[1].split(":")
    stdlib = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Content-Type": "application/json"}

    def post_stdlib(q: str) -> dict:
        stdlib.request("POST", "/search", json.dumps({"query": q, "k": 10}), headers)
        response = stdlib.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"POST /search answered {response.status}")
        return json.loads(body)

    with httpx.Client(base_url=url, timeout=60) as client:
        for q in queries[:20]:
            encoder.encode_queries([q])
            client.post("/search", json={"query": q, "k": 10}).raise_for_status()
            post_stdlib(q)
        for i in range(n):
            q = queries[i % len(queries)]
            start = time.perf_counter()
            encoder.encode_queries([q])
            out["bare"].append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()
            client.post("/search", json={"query": q, "k": 10}).raise_for_status()
            out["httpx"].append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()
            answer = post_stdlib(q)
            out["stdlib"].append(1000 * (time.perf_counter() - start))
            out["server"].append(float(answer["latency_ms"]))
    stdlib.close()
    return out


def encoder_scaling(queries: list[str], backend: str) -> dict[str, float]:
    """In-process encode_queries time per query at batch sizes 1, 4, 16, 32 (median of 10): how much a
    bigger batch saves per query on this machine, with the server's length buckets."""
    from retrodistill.students.bi_encoder import BiEncoder

    encoder = BiEncoder(MODEL, backend=backend)
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


def quality(url: str, dataset) -> float:
    """nDCG@10 of the served results (POST /search, k=10) on the dataset's judged queries."""
    from retrodistill.eval.measures import evaluate

    run: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for q in dataset.judged_queries():
            response = client.post("/search", json={"query": q.text, "k": 10})
            response.raise_for_status()
            run[q.query_id] = {h["doc_id"]: float(h["score"]) for h in response.json()["results"][0]["hits"]}
    return round(evaluate(run, dataset.qrels, ["nDCG@10"]).aggregate["nDCG@10"], 4)


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
        "http_parser": "httptools (head-capped)" if importlib.util.find_spec("httptools") else "h11",
        "event_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
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


SYSTEMS = {
    "naive torch": ("torch", 1),
    "batched torch": ("torch", 32),
    "naive onnx": ("onnx", 1),
    "batched onnx": ("onnx", 32),
    "naive onnx-int8": ("onnx-int8", 1),
    "batched onnx-int8": ("onnx-int8", 32),
    "naive openvino": ("openvino", 1),
    "batched openvino": ("openvino", 32),
    "naive openvino-bf16": ("openvino-bf16", 1),
    "batched openvino-bf16": ("openvino-bf16", 32),
}


def latency_row(times: dict[str, list[float]]) -> dict:
    """p50 / p95 of each measure, the client's p50 over the bare forward's (httpx: ``p50_ratio``, as
    recorded before; ``stdlib_p50_ratio``), and where the difference goes."""
    bare = pct(times["bare"], 50)
    row = {f"{name}_p{q}_ms": round(pct(values, q), 2) for name, values in times.items() for q in (50, 95)}
    row["p50_ratio"] = round(pct(times["httpx"], 50) / bare, 3)
    row["stdlib_p50_ratio"] = round(pct(times["stdlib"], 50) / bare, 3)
    row["server_p50_ratio"] = round(pct(times["server"], 50) / bare, 3)
    row["method"] = (
        "alternating per query: in-process encode_queries([q]) (same backend), POST /search k=10 with httpx, "
        "then with http.client; server = the response's latency_ms"
    )
    return row


def measure_system(index: str, name: str, dataset, queries: list[str], args: argparse.Namespace) -> dict:
    """One server (backend, max_batch): nDCG@10 of what it serves, QPS and latency at each concurrency,
    and (batched ones) p50 over HTTP against the bare forward of the same backend."""
    backend, max_batch = SYSTEMS[name]
    wait = "1" if max_batch > 1 else "0"
    flags = ("--backend", backend, "--max-batch", str(max_batch), "--max-wait-ms", wait, "--threads", str(args.threads))
    server = Server(index, *flags)
    try:
        row: dict = {"backend": backend, "max_batch": max_batch, "rss_ready_mb": round(server.rss_mb(), 1)}
        warm(server.url, queries)
        row["ndcg@10"] = quality(server.url, dataset)
        for concurrency in args.concurrency:
            before = server.batch_stats()
            part = asyncio.run(load(server.url, queries, args.qps_requests, concurrency, 600))
            after = server.batch_stats()
            part["mean_batch"] = round(
                (after["queries"] - before["queries"]) / max(after["batches"] - before["batches"], 1), 2
            )
            row[f"c{concurrency}"] = part
        if max_batch > 1:
            row["latency"] = latency_row(interleaved_latency(server.url, queries, args.latency_n, backend))
        row["rss_end_mb"] = round(server.rss_mb(), 1)
        return row
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="indexes/scifact-minilm-flat")
    parser.add_argument("--corpus", default="beir/scifact/test")
    parser.add_argument("--latency-n", type=int, default=200)
    parser.add_argument("--qps-requests", type=int, default=1200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 32])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--soak-requests", type=int, default=20_000)
    parser.add_argument("--soak-max-seconds", type=float, default=2400)
    parser.add_argument("--soak-backend", default="torch", help="backend of the batched server the soak runs on")
    parser.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads, server and bare alike")
    parser.add_argument("--no-soak", dest="soak", action="store_false")
    parser.add_argument("--out", default="eval/results/serve")
    args = parser.parse_args()

    from retrodistill.data.load import load_dataset

    ensure_index(Path(args.index), args.corpus)
    dataset = load_dataset(args.corpus)
    queries = [q.text for q in dataset.judged_queries()]
    import torch

    torch.set_num_threads(args.threads)
    result: dict = {"machine": machine(), "args": vars(args), "systems": {}, "encoder_scaling": {}}
    result["machine"]["torch_threads"] = args.threads
    for backend in dict.fromkeys(SYSTEMS[name][0] for name in args.systems):
        result["encoder_scaling"][backend] = encoder_scaling(queries, backend)
        print("encoder", backend, result["encoder_scaling"][backend], flush=True)
    for name in args.systems:
        result["systems"][name] = measure_system(args.index, name, dataset, queries, args)
        print(name, json.dumps(result["systems"][name]), flush=True)
    if args.soak:
        server = Server(args.index, "--backend", args.soak_backend, "--max-batch", "32", "--threads", str(args.threads))
        try:
            warm(server.url, queries)
            result["d_soak"] = {"backend": args.soak_backend, **soak(server, queries, args)}
            print("d", result["d_soak"], flush=True)
        finally:
            server.stop()
    result["machine"]["load_average_end"] = os.getloadavg()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_serve.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "bench_serve.md").write_text(markdown(result) + "\n")
    print(markdown(result))


def markdown(r: dict) -> str:
    m, systems = r["machine"], r["systems"]
    levels = r["args"]["concurrency"]
    lines = [
        "# Serving benchmark (SciFact test, flat index, all-MiniLM-L6-v2, 127.0.0.1)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} thread(s) for torch "
        f"and ONNX Runtime), Python {m['python']}, server on {m.get('http_parser', 'h11')} and "
        f"{m.get('event_loop', 'asyncio')}. Load average {m['load_average_start'][0]:.1f} at start, "
        f"{m['load_average_end'][0]:.1f} at end; the load generator shares the cores with the server.",
        "",
        "| system | nDCG@10 | "
        + " | ".join(f"c={c}: QPS (p50 / p95 ms, mean batch)" for c in levels)
        + " | HTTP p50 / bare forward p50 (httpx / http.client) |",
        "|---|---|" + "---|" * len(levels) + "---|",
    ]
    for name, row in systems.items():
        cells = [
            f"{row[f'c{c}']['qps']} ({row[f'c{c}']['p50_ms']} / {row[f'c{c}']['p95_ms']}, {row[f'c{c}']['mean_batch']})"
            for c in levels
        ]
        lat = row.get("latency")
        ratio = f"{lat['p50_ratio']}x / {lat['stdlib_p50_ratio']}x" if lat else ""
        lines.append(f"| {name} | {row['ndcg@10']} | " + " | ".join(cells) + f" | {ratio} |")
    lines += ["", "| ratio (same run) | value | target |", "|---|---|---|"]
    top = max(levels)
    for backend in dict.fromkeys(row["backend"] for row in systems.values()):
        naive, batched = systems.get(f"naive {backend}"), systems.get(f"batched {backend}")
        if naive and batched:
            for c in levels[1:]:
                ratio = batched[f"c{c}"]["qps"] / naive[f"c{c}"]["qps"]
                target = ">= 3x" if c == 16 else ""
                lines.append(f"| {backend}: batched / naive QPS at c={c} | {ratio:.2f}x | {target} |")
        if batched and batched.get("latency"):
            lat = batched["latency"]
            lines.append(f"| {backend}: HTTP p50 / bare forward p50, httpx client | {lat['p50_ratio']}x | <= 1.3x |")
            lines.append(f"| {backend}: the same, http.client | {lat['stdlib_p50_ratio']}x | <= 1.3x |")
    base = systems.get("batched torch")
    for name, row in systems.items():
        if base and row is not base and name.startswith("batched"):
            lines.append(
                f"| {name} / batched torch: QPS at c={top} | {row[f'c{top}']['qps'] / base[f'c{top}']['qps']:.2f}x | |"
            )
            lines.append(f"| {name}: nDCG@10 - torch's | {row['ndcg@10'] - base['ndcg@10']:+.4f} | float <= 0.002 |")
    naive = systems.get("naive torch")
    for name, row in systems.items():
        if naive and len(levels) > 1 and name.startswith("batched"):
            c = levels[1]
            ratio = row[f"c{c}"]["qps"] / naive[f"c{c}"]["qps"]
            lines.append(f"| {name} / naive torch (engine and batching together): QPS at c={c} | {ratio:.2f}x | |")
    d = r.get("d_soak")
    if d:
        lines += [
            f"| soak ({d['backend']}, c=32): requests, errors | {d['requests']}, {d['errors']} | 20000, 0 |",
            f"| soak: RSS after a 2000-request warm-up -> end | {d['rss_start_mb']} -> {d['rss_end_mb']} MiB "
            f"({d['rss_growth_pct']:+.2f}%) | <= 5% |",
            "",
            f"Soak QPS {d['qps']}; RSS before the warm-up {d['rss_before_warmup_mb']} MiB; every 2000 requests "
            f"(MiB): {d['rss_samples_mb']}",
        ]
    lines += [
        "",
        "Where one request's time goes (batched servers, c=1, p50 ms; alternating per query): the bare forward "
        "in-process; the server's own time for the route (forward, index search, doc store, response models); "
        "the whole request seen by http.client and by httpx.",
        "",
        "| server | bare forward | server route | http.client | httpx |",
        "|---|---|---|---|---|",
    ]
    for name, row in systems.items():
        lat = row.get("latency")
        if lat:
            parts = " | ".join(str(lat[f"{key}_p50_ms"]) for key in ("bare", "server", "stdlib", "httpx"))
            lines.append(f"| {name} | {parts} |")
    lines += ["", "Encoder cost per query (ms) by batch size, in-process, length-bucketed:", ""]
    for backend, row in r["encoder_scaling"].items():
        lines.append(f"- {backend}: {row}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
