"""Server settings from CLI flags or ``RETRODISTILL_*`` environment variables (flags win)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

ENV_PREFIX = "RETRODISTILL_"
SYSTEMS = ("bm25", "student", "reranker", "teacher")
ENABLE = {"bm25": "--bm25", "hybrid": "--bm25", "reranker": "--reranker MODEL", "teacher": "--teacher SPEC"}


class ServeSettings(BaseModel):
    """Everything ``retrodistill serve`` can be told. Each field ``name`` is also read from the
    environment variable ``RETRODISTILL_<NAME>`` (e.g. ``RETRODISTILL_API_KEY``, ``RETRODISTILL_MAX_K``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index_dir: str = Field(description="index directory written by `retrodistill index build`")
    model: str | None = Field(None, description="query encoder path/id (default: the manifest's model)")
    reranker: str | None = Field(None, description="sentence-transformers CrossEncoder id/path; enables rerank")
    bm25: bool = Field(
        False,
        description="build a BM25 index (bm25s) of the doc store at start: a /compare column, and enables "
        'POST /search with mode "hybrid"',
    )
    hybrid_fusion: Literal["rrf", "zscore"] = Field(
        "rrf",
        description='how mode "hybrid" fuses BM25 and the student when a request gives no "fusion": rrf '
        "(reciprocal rank, sum of 1 / (hybrid_rrf_k + rank)) or zscore (hybrid_weight * z(student) + "
        "(1 - hybrid_weight) * z(bm25)); the fusion of `retrodistill eval --system hybrid:MODEL`",
    )
    hybrid_weight: float = Field(0.5, ge=0, le=1, description="zscore fusion: the student's weight (BM25's is 1 - it)")
    hybrid_rrf_k: int = Field(60, ge=1, description="rrf fusion: the constant k in 1 / (k + rank)")
    hybrid_depth: int = Field(
        100, ge=1, le=10_000, description='mode "hybrid": each side\'s top max(k, hybrid_depth) is fused, then cut to k'
    )
    teacher: str | None = Field(
        None, description="teacher spec (bm25, bi-encoder:MODEL, ...) re-ranking the student's top k in /compare"
    )
    updates: bool = Field(
        False,
        description="enable POST /documents (add) and POST /documents/delete while serving, behind the API key "
        "(which must then be set); each update is written to the index directory atomically",
    )
    max_update_docs: int = Field(1000, ge=1, description="most documents (or ids) in one update request")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(
        None, description="when set, POST /search needs header X-API-Key (and /info shows paths only with it)"
    )
    max_batch: int = Field(32, ge=1, le=4096, description="queries per encoder forward (1 = no batching)")
    max_wait_ms: float = Field(1.0, ge=0, le=1000, description="how long a batch waits for more queries")
    max_query_chars: int = Field(2000, ge=1, description="longest query accepted, in characters")
    max_queries: int = Field(64, ge=1, description="most queries in one request")
    max_k: int = Field(100, ge=1, description="largest k accepted")
    default_k: int = Field(10, ge=1)
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="largest request body, in bytes")
    max_cost: int = Field(
        16_000, ge=1, description="largest request cost: the sum over its queries of (characters + k); else 413"
    )
    max_rerank_depth: int = Field(20, ge=1, description="largest k with rerank (documents re-ranked per query)")
    max_rerank_pairs: int = Field(40, ge=1, description="largest queries x k with rerank (cross-encoder pairs)")
    body_timeout_s: float = Field(10.0, gt=0, le=3600, description="seconds to receive a request body; else 408")
    snippet_chars: int = Field(300, ge=0, description="characters of text returned as the snippet")
    rerank_batch_size: int = Field(32, ge=1)
    encode_batch_size: int = Field(64, ge=1)
    device: Literal["auto", "cpu", "gpu"] = "auto"
    threads: int | None = Field(None, ge=1, description="torch threads for the encoder (default: torch's choice)")
    backend: str | None = Field(
        None,
        description="query encoder engine: auto, torch, onnx, openvino, openvino-bf16, onnx-int8 (default: "
        "onnx-int8 for an index built with it, else auto: the fastest float32 engine measured at start)",
    )
    efSearch: int | None = Field(None, ge=1, description="override the HNSW search beam")
    nprobe: int | None = Field(None, ge=1, description="override the IVF cells scanned")
    ncandidates: int | None = Field(
        None, ge=1, description="override a colbert index's token neighbours per query token"
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    limit_concurrency: int = Field(256, ge=1, description="uvicorn: answer 503 beyond this many connections/tasks")
    backlog: int = Field(512, ge=1, description="uvicorn: queued TCP connections not yet accepted")
    timeout_keep_alive: float = Field(5.0, gt=0, le=600, description="uvicorn: close idle keep-alive connections")

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str | None) -> str | None:
        from retrodistill.inference.backends import BACKENDS

        if value is not None and value not in BACKENDS:
            raise ValueError(f"unknown inference backend {value!r}; choose one of: {', '.join(BACKENDS)}")
        return value

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError(
                "the API key is empty; set RETRODISTILL_API_KEY (or --api-key) to a secret, "
                "or unset it to serve without a key"
            )
        return value

    @model_validator(mode="after")
    def _updates_need_a_key(self) -> ServeSettings:
        if self.updates and self.api_key is None:
            raise ValueError(
                "updates (--updates) change the index for every client, so they need an API key: "
                "set RETRODISTILL_API_KEY (or --api-key)"
            )
        return self

    @classmethod
    def from_env(cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None):
        """Settings from ``RETRODISTILL_*`` variables, then ``overrides`` (None values are ignored).
        An empty variable counts as unset, except ``RETRODISTILL_API_KEY``: an empty key is an error,
        never a silent switch to no authentication."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            key = ENV_PREFIX + name.upper()
            if key in environ and (environ[key] != "" or name == "api_key"):
                values[name] = environ[key]
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls(**values)

    def systems(self) -> list[str]:
        """The columns /compare can show on this server, in page order."""
        on = {"bm25": self.bm25, "student": True, "reranker": self.reranker is not None, "teacher": bool(self.teacher)}
        return [name for name in SYSTEMS if on[name]]

    def search_overrides(self) -> dict[str, int]:
        """The index search settings given here, replacing the manifest's (efSearch, nprobe, ncandidates)."""
        given = {"efSearch": self.efSearch, "nprobe": self.nprobe, "ncandidates": self.ncandidates}
        return {key: value for key, value in given.items() if value}

    def public(self) -> dict[str, Any]:
        """Every setting but the API key: what a client holding the key may see."""
        data = self.model_dump(exclude={"api_key"})
        data["api_key_required"] = self.api_key is not None
        return data

    def limits(self) -> dict[str, Any]:
        """What any client needs to shape its requests: limits only, no paths, hosts or hardware."""
        names = ("max_query_chars", "max_queries", "max_k", "default_k", "max_body_bytes", "max_cost")
        data: dict[str, Any] = {name: getattr(self, name) for name in names}
        data["rerank"] = self.reranker is not None
        data["updates"] = self.updates
        data["systems"] = self.systems()
        data.update(max_rerank_depth=self.max_rerank_depth, max_rerank_pairs=self.max_rerank_pairs)
        data["api_key_required"] = self.api_key is not None
        return data

    def uvicorn_options(self) -> dict[str, Any]:
        """Connection limits for ``uvicorn.run`` / ``uvicorn.Config`` (the body deadline is the app's) and
        the HTTP parser: httptools with a head cap where installed, else h11 (same cap)."""
        from retrodistill.serve.protocol import HEAD_LIMIT, http_protocol

        return {
            "limit_concurrency": self.limit_concurrency,
            "backlog": self.backlog,
            "timeout_keep_alive": self.timeout_keep_alive,
            "h11_max_incomplete_event_size": HEAD_LIMIT,
            "timeout_graceful_shutdown": 10,
            # never uvicorn's "auto": its httptools protocol has no cap on the request head; this one has
            "http": http_protocol(),
        }
