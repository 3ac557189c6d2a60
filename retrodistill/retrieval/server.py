"""``server:URL`` in ``retrodistill eval``: a Retriever that asks a running ``retrodistill serve``."""

from __future__ import annotations

import os

from retrodistill.data.records import Document
from retrodistill.errors import ConfigError, require
from retrodistill.retrieval.base import Retriever


class ServerRetriever(Retriever):
    """POSTs batches of queries to ``URL/search`` (the spec argument: ``server:http://127.0.0.1:8000``).
    Scores are the server's (inner products, or cross-encoder outputs with ``rerank=true``), higher = more
    relevant. The API key comes from ``api_key`` or ``$RETRODISTILL_API_KEY``; ``batch`` queries go in one
    request (capped by the server's max_queries).
    """

    name = "server"

    def __init__(
        self, model: str, api_key: str | None = None, batch: int = 32, rerank: bool = False, timeout: float = 120.0
    ) -> None:
        httpx = require("httpx", purpose="the server:URL retriever")

        super().__init__()
        self.url = model.rstrip("/")
        headers = {}
        key = api_key or os.environ.get("RETRODISTILL_API_KEY")
        if key:
            headers["X-API-Key"] = str(key)
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.rerank = bool(rerank)
        try:
            response = self.client.get("/info")
        except httpx.HTTPError as exc:
            raise ConfigError(f"cannot reach {self.url} ({exc}); is `retrodistill serve` running there?") from None
        if response.status_code != 200:
            raise ConfigError(f"{self.url}/info answered {response.status_code}: {response.text[:200]}")
        self.info = response.json()
        limits = self.info.get("server", {})
        self.max_k = int(limits.get("max_k", 100))
        self.batch_size = max(1, min(int(batch), int(limits.get("max_queries", batch))))
        self.max_cost = limits.get("max_cost")
        self.max_pairs = limits.get("max_rerank_pairs") if self.rerank else None

    def _index(self, docs: list[Document]) -> None:
        size = int(self.info["corpus"]["size"])
        if size != len(docs):
            raise ConfigError(
                f"the server at {self.url} indexes {size} docs but the dataset's corpus has {len(docs)}; "
                "serve an index built from the same corpus"
            )

    def _search(self, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        if k > self.max_k:
            raise ConfigError(f"the server allows k <= {self.max_k}; pass --k {self.max_k} or serve with --max-k {k}")
        hits: list[list[tuple[str, float]]] = []
        for part in self._parts(texts, k):
            hits.extend(self._post(part, k))
        return hits

    def _parts(self, texts: list[str], k: int) -> list[list[str]]:
        """``texts`` cut into requests within the server's cost budget and re-ranking pairs."""
        parts: list[list[str]] = [[]]
        cost = 0
        for text in texts:
            over_cost = self.max_cost is not None and cost + len(text) + k > int(self.max_cost)
            over_pairs = self.max_pairs is not None and (len(parts[-1]) + 1) * k > int(self.max_pairs)
            if parts[-1] and (over_cost or over_pairs):
                parts.append([])
                cost = 0
            parts[-1].append(text)
            cost += len(text) + k
        return [part for part in parts if part]

    def _post(self, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        response = self.client.post("/search", json={"queries": texts, "k": k, "rerank": self.rerank})
        if response.status_code != 200:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise ConfigError(f"{self.url}/search answered {response.status_code}: {message}")
        return [[(h["doc_id"], float(h["score"])) for h in r["hits"]] for r in response.json()["results"]]
