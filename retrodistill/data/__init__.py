"""Data layer: BEIR folders, ir_datasets ids, TREC files and rank_llm candidate lists."""

from __future__ import annotations

from retrodistill.data.records import Dataset, Document, Qrels, Query, Run

__all__ = ["Dataset", "Document", "Qrels", "Query", "Run"]
