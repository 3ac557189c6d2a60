"""ICT-style pseudo-queries without an LLM: one random sentence (6-40 words) of each of N seeded passages.

Writes a BEIR folder (split ``generated``, each query judged against its source passage) that
``eval/configs/labelfree/scifact-sentences.json`` trains on with the label-free recipe:

    python eval/sentence_queries.py eval/runs/labelfree-scifact/generated eval/runs/sentences-scifact 809
    python eval/labelfree.py eval/configs/labelfree/scifact-sentences.json --only sentences

Result (eval/results/labelfree/scifact-sentences.md): worse than the init. An experiment, not a feature.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a BEIR folder with corpus.jsonl")
    parser.add_argument("out", type=Path)
    parser.add_argument("n", type=int, help="queries to write (one per sampled passage)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    corpus = (args.source / "corpus.jsonl").read_text(encoding="utf-8")
    docs = [json.loads(line) for line in corpus.splitlines() if line.strip()]
    rng = random.Random(args.seed)
    rng.shuffle(docs)
    queries: list[dict[str, str]] = []
    qrels: list[tuple[str, str]] = []
    for doc in docs:
        sentences = [s.strip() for s in SENTENCE_END.split(doc.get("text", "")) if 6 <= len(s.split()) <= 40]
        if not sentences:
            continue
        queries.append({"_id": f"{doc['_id']}-s0", "text": rng.choice(sentences)})
        qrels.append((queries[-1]["_id"], doc["_id"]))
        if len(queries) == args.n:
            break
    (args.out / "qrels").mkdir(parents=True, exist_ok=True)
    (args.out / "corpus.jsonl").write_text(corpus, encoding="utf-8")
    (args.out / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    rows = "".join(f"{q}\t{d}\t1\n" for q, d in qrels)
    (args.out / "qrels" / "generated.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows, encoding="utf-8")
    print(f"{len(queries)} queries in {args.out}")


if __name__ == "__main__":
    main()
