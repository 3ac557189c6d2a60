"""``retrodistill serve INDEX_DIR``: the search API and web page over an index directory (uvicorn)."""

from __future__ import annotations

import argparse

from retrodistill.inference.backends import BACKENDS

EPILOG = """\
every option can also come from an environment variable RETRODISTILL_<NAME> (flags win), e.g.
RETRODISTILL_API_KEY, RETRODISTILL_MAX_BATCH, RETRODISTILL_RERANKER.

examples:
  retrodistill serve indexes/scifact-minilm-flat --port 8000
  curl -s localhost:8000/search -H 'Content-Type: application/json' -d '{"query": "vitamin D and covid", "k": 5}'
  RETRODISTILL_API_KEY=secret retrodistill serve indexes/x --reranker cross-encoder/ms-marco-MiniLM-L6-v2
  retrodistill serve indexes/x --bm25 --teacher bm25   # side by side: tick "side by side" on the page, or POST /compare
  retrodistill serve indexes/x --bm25 --hybrid-fusion zscore --hybrid-weight 0.5   # BM25 + student fused:
  curl -s localhost:8000/search -H 'Content-Type: application/json' -d '{"query": "vitamin D", "mode": "hybrid"}'
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve an index directory over HTTP (search API, metrics, web page)",
        description="Serve POST /search, POST /compare, /health, /ready, /metrics, /info, /docs and a search page at / "
        "for an index directory built by `retrodistill index build`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("index_dir", nargs="?", help="index directory (or RETRODISTILL_INDEX_DIR)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--model", help="query encoder path/id (default: the manifest's; must be the same weights)")
    p.add_argument("--reranker", help='sentence-transformers CrossEncoder id or path; enables "rerank": true')
    p.add_argument(
        "--bm25",
        action="store_true",
        default=None,
        help="build a BM25 index (bm25s) of the doc store at start: a column of POST /compare and the page, and "
        'enables POST /search {"mode": "hybrid"} (BM25 and the student fused per query)',
    )
    p.add_argument(
        "--hybrid-fusion",
        choices=["rrf", "zscore"],
        help='default fusion of mode "hybrid" (a request\'s "fusion" wins): rrf = sum of 1/(rrf_k + rank), '
        "zscore = W * z(student) + (1 - W) * z(bm25); as eval's hybrid:MODEL (default rrf)",
    )
    p.add_argument("--hybrid-weight", type=float, help="zscore fusion: the student's weight W in [0, 1] (default 0.5)")
    p.add_argument("--hybrid-rrf-k", type=int, help="rrf fusion: the constant rrf_k (default 60)")
    p.add_argument(
        "--hybrid-depth", type=int, help="mode hybrid fuses each side's top max(k, this) documents (default 100)"
    )
    p.add_argument(
        "--teacher",
        help="teacher spec (bm25, bi-encoder:MODEL, cross-encoder:MODEL, ...) re-ranking the student's "
        "top k in POST /compare",
    )
    p.add_argument(
        "--api-key", help="require this key in the X-API-Key header of /search and /compare; not blank (prefer env)"
    )
    p.add_argument(
        "--updates",
        action="store_true",
        default=None,
        help="enable POST /documents and POST /documents/delete (index add / delete while serving); needs --api-key",
    )
    p.add_argument("--max-batch", type=int, help="queries per encoder forward (default 32; 1 = no batching)")
    p.add_argument("--max-wait-ms", type=float, help="how long a batch waits for more queries (default 1)")
    p.add_argument("--max-query-chars", type=int, help="longest query accepted (default 2000)")
    p.add_argument("--max-queries", type=int, help="most queries per request (default 64)")
    p.add_argument("--max-k", type=int, help="largest k accepted (default 100)")
    p.add_argument("--max-body-bytes", type=int, help="largest request body (default 262144)")
    p.add_argument("--threads", type=int, help="torch threads for the query encoder (default: torch's choice)")
    p.add_argument(
        "--backend",
        choices=list(BACKENDS),
        help="query encoder engine (default: onnx-int8 for an index built with it, else auto): "
        + "; ".join(f"{name}: {text}" for name, text in BACKENDS.items()),
    )
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], help="FAISS device (default auto)")
    p.add_argument("--ef-search", dest="efSearch", type=int, help="HNSW search beam (default: the manifest's)")
    p.add_argument("--nprobe", type=int, help="IVF cells scanned (default: the manifest's)")
    p.add_argument(
        "--ncandidates", type=int, help="colbert index: token neighbours per query token (default: the manifest's)"
    )
    p.add_argument(
        "--max-cost", type=int, help="largest request cost, the sum over queries of characters + k (default 16000)"
    )
    p.add_argument("--max-rerank-depth", type=int, help="largest k with rerank (default 20)")
    p.add_argument("--max-rerank-pairs", type=int, help="largest queries x k with rerank (default 40)")
    p.add_argument("--body-timeout", dest="body_timeout_s", type=float, help="seconds to send a body (default 10)")
    p.add_argument("--limit-concurrency", type=int, help="answer 503 beyond this many connections (default 256)")
    p.add_argument("--backlog", type=int, help="queued TCP connections not yet accepted (default 512)")
    p.add_argument("--timeout-keep-alive", type=float, help="close idle keep-alive connections after (default 5 s)")
    p.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], help="uvicorn log level")
    p.set_defaults(handler=run)


FIELDS = (
    "index_dir",
    "host",
    "port",
    "model",
    "reranker",
    "bm25",
    "hybrid_fusion",
    "hybrid_weight",
    "hybrid_rrf_k",
    "hybrid_depth",
    "teacher",
    "api_key",
    "updates",
    "max_batch",
    "max_wait_ms",
    "max_query_chars",
    "max_queries",
    "max_k",
    "max_body_bytes",
    "max_cost",
    "max_rerank_depth",
    "max_rerank_pairs",
    "body_timeout_s",
    "backlog",
    "timeout_keep_alive",
    "device",
    "threads",
    "backend",
    "efSearch",
    "nprobe",
    "ncandidates",
    "limit_concurrency",
    "log_level",
)


def run(args: argparse.Namespace) -> int:
    import os

    from retrodistill.errors import ConfigError, require

    for module in ("fastapi", "uvicorn", "prometheus_client"):
        require(module, purpose="retrodistill serve")
    import uvicorn

    from retrodistill.serve.app import create_app
    from retrodistill.serve.service import SearchService
    from retrodistill.serve.settings import ServeSettings

    values = {name: getattr(args, name) for name in FIELDS}
    if not values["index_dir"] and not os.environ.get("RETRODISTILL_INDEX_DIR"):
        raise ConfigError("give an index directory: retrodistill serve INDEX_DIR (or set RETRODISTILL_INDEX_DIR)")
    settings = ServeSettings.from_env(values)
    teacher = None
    if settings.teacher:
        from retrodistill.teachers import build_teacher

        teacher = build_teacher(settings.teacher)
    service = SearchService(settings, teacher=teacher)
    app = create_app(settings, service=service)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        **settings.uvicorn_options(),
    )
    return 0
