"""Titles as pseudo-queries, without an LLM: each of N seeded documents' title is a query for its own body.

Writes a BEIR folder (split ``generated``) whose corpus is the source corpus *without titles*, so a query is
never a verbatim part of the passage it came from (a sentence left in its passage is, and it taught the
student copy-matching: ``scifact-sentences.md``). Each query is judged against its source document; the
label-free recipe uses the judgement only where its config asks for source positives.

    python eval/title_queries.py /path/to/beir/scifact eval/runs/titles-scifact 809
    python eval/labelfree.py eval/configs/labelfree/scifact-titles.json --only titles

An experiment, not a feature: SciFact 0.6585 (init 0.6451, BM25 0.6713), NFCorpus 0.3080 (init 0.3159);
``eval/results/labelfree/scifact-titles.md``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from pathlib import Path


def _read_corpus(folder: Path) -> list[dict[str, str]]:
    plain, packed = folder / "corpus.jsonl", folder / "corpus.jsonl.gz"
    if plain.exists():
        text = plain.read_text(encoding="utf-8")
    else:
        with gzip.open(packed, "rt", encoding="utf-8") as handle:
            text = handle.read()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a BEIR folder with corpus.jsonl(.gz)")
    parser.add_argument("out", type=Path)
    parser.add_argument("n", type=int, help="queries to write (one per sampled document with a title)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-words", type=int, default=4)
    args = parser.parse_args()
    docs = _read_corpus(args.source)
    order = list(range(len(docs)))
    random.Random(args.seed).shuffle(order)
    queries: list[dict[str, str]] = []
    for i in order:
        title, body = docs[i].get("title", "").strip(), docs[i].get("text", "").strip()
        if len(title.split()) >= args.min_words and body:
            queries.append({"_id": f"{docs[i]['_id']}-t", "text": title, "doc": docs[i]["_id"]})
            if len(queries) == args.n:
                break
    bodies = [{"_id": d["_id"], "title": "", "text": d.get("text", "")} for d in docs]
    (args.out / "qrels").mkdir(parents=True, exist_ok=True)
    (args.out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in bodies), encoding="utf-8")
    lines = "".join(json.dumps({"_id": q["_id"], "text": q["text"]}) + "\n" for q in queries)
    (args.out / "queries.jsonl").write_text(lines, encoding="utf-8")
    rows = "".join(f"{q['_id']}\t{q['doc']}\t1\n" for q in queries)
    (args.out / "qrels" / "generated.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows, encoding="utf-8")
    print(f"{len(queries)} queries in {args.out}")


if __name__ == "__main__":
    main()
