"""Generated queries out of the store: a queries.jsonl with provenance and a BEIR folder ``teach`` and
``eval`` read (``--dataset FOLDER --split generated``; the pseudo-qrels name each query's source passage)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from retrodistill.atomic import atomic_open
from retrodistill.data.records import Document
from retrodistill.generation.store import GeneratedQuery, QueryStore

SPLIT = "generated"


def export_queries(
    queries: QueryStore | Sequence[GeneratedQuery], corpus: Mapping[str, Document], folder: str | os.PathLike[str]
) -> Path:
    """Write ``folder/queries.jsonl`` (``_id``, ``text`` and provenance fields), ``folder/corpus.jsonl`` and
    ``folder/qrels/generated.tsv`` (query, source passage, 1), each atomically. Returns the folder.

    ``queries`` is a store (all its kept queries) or a list of them, e.g. what a filter kept."""
    folder = Path(folder)
    queries = queries.queries() if isinstance(queries, QueryStore) else list(queries)
    with atomic_open(folder / "queries.jsonl") as out:
        for q in queries:
            row = {"_id": q.query_id, "text": q.text, **{k: v for k, v in asdict(q).items() if k != "query_id"}}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    with atomic_open(folder / "qrels" / f"{SPLIT}.tsv") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        out.writelines(f"{q.query_id}\t{q.doc_id}\t1\n" for q in queries)
    with atomic_open(folder / "corpus.jsonl") as out:
        for doc in corpus.values():
            out.write(json.dumps({"_id": doc.doc_id, "title": doc.title, "text": doc.text}, ensure_ascii=False) + "\n")
    return folder
