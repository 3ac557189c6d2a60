"""BEIR dataset folders: corpus.jsonl[.gz], queries.jsonl[.gz], qrels/<split>.tsv."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from retrodistill.data.checks import build_dataset
from retrodistill.data.records import Dataset, Document, Query
from retrodistill.data.textfile import find_file, iter_jsonl
from retrodistill.data.trec import read_qrels
from retrodistill.errors import DataError

log = logging.getLogger("retrodistill.data")


def read_corpus_jsonl(path: Path) -> dict[str, Document]:
    """BEIR corpus lines ``{"_id", "title", "text"}`` (``id``/``docid`` and ``contents`` also accepted)."""
    corpus: dict[str, Document] = {}
    duplicates = 0
    for number, obj in iter_jsonl(path):
        doc_id = obj.get("_id", obj.get("id", obj.get("docid")))
        if doc_id is None:
            raise DataError("document has no '_id' field", str(path), number)
        text = obj.get("text", obj.get("contents"))
        if not isinstance(text, str):
            raise DataError(f"document {doc_id!r} has no 'text' string", str(path), number)
        doc_id = str(doc_id)
        if doc_id in corpus:
            duplicates += 1
            continue
        corpus[doc_id] = Document(doc_id, text, str(obj.get("title") or ""))
    if duplicates:
        log.warning("%s: %d duplicate document ids skipped (first occurrence kept)", path, duplicates)
    if not corpus:
        raise DataError("the corpus is empty", str(path))
    return corpus


def read_queries_jsonl(path: Path) -> dict[str, Query]:
    """BEIR query lines ``{"_id", "text"}``."""
    queries: dict[str, Query] = {}
    for number, obj in iter_jsonl(path):
        qid = obj.get("_id", obj.get("id", obj.get("query_id")))
        text = obj.get("text")
        if qid is None or not isinstance(text, str):
            raise DataError("query needs '_id' and 'text'", str(path), number)
        queries[str(qid)] = Query(str(qid), text)
    if not queries:
        raise DataError("no queries found", str(path))
    return queries


def load_beir_folder(folder: str | os.PathLike[str], split: str = "test") -> Dataset:
    """Load one split of a BEIR folder; only the queries judged in that split are kept."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("not a folder", str(folder))
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise DataError(
            f"no qrels for split {split!r}; available splits: {', '.join(available) or 'none'}",
            str(qrels_path),
        )
    corpus = read_corpus_jsonl(find_file(folder, "corpus.jsonl"))
    all_queries = read_queries_jsonl(find_file(folder, "queries.jsonl"))
    qrels = read_qrels(qrels_path)
    queries = {qid: all_queries[qid] for qid in qrels if qid in all_queries}
    return build_dataset(f"{folder.name}/{split}", corpus, queries, qrels, source=str(qrels_path))
