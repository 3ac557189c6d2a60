"""Prometheus metrics of one app, in its own CollectorRegistry (several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """Request counts by endpoint and status, request latency, encoder batch sizes and forward time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "retrodistill_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "retrodistill_request_seconds",
            "HTTP request latency by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "retrodistill_batch_size", "queries per encoder forward", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.forward = Histogram(
            "retrodistill_forward_seconds",
            "encoder forward + index search time per batch",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queries = Counter("retrodistill_queries", "queries searched", registry=self.registry)
        self.ready = Gauge("retrodistill_ready", "1 once the index and model are loaded", registry=self.registry)
        self.index_size = Gauge("retrodistill_index_documents", "documents in the served index", registry=self.registry)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.forward.observe(seconds)
        self.queries.inc(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)
