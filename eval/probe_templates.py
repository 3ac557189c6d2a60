"""How specific each query template's answers are: does BM25 find the source passage with the query?

    python eval/probe_templates.py --corpus /path/to/beir/scifact --passages 24 gpl finding

Writes one query per sampled passage and template with the default LLM (same seeds for every template),
searches the whole corpus with bm25s and reports the share of queries whose source passage ranks first
and in the top 10, with a few examples. A cheap check of a template before a full distill run; it says
nothing about the student trained on the queries. ``--out`` writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("templates", nargs="+", help="template names or files (see `retrodistill generate -h`)")
    parser.add_argument("--corpus", required=True, help="BEIR folder, corpus.jsonl or ir_datasets id")
    parser.add_argument("--passages", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from retrodistill.data.corpus import load_corpus
    from retrodistill.data.records import Query
    from retrodistill.generation.generator import QueryGenerator, clean_query, row_seed, sample_passages
    from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever

    corpus = load_corpus(args.corpus)
    passages = sample_passages(corpus, args.passages, args.seed)
    bm25 = BM25sRetriever()
    bm25.index(corpus)
    shared = None
    rows = []
    for name in args.templates:
        gen = QueryGenerator(template=name, batch_size=len(passages))
        if shared is None:
            gen.load()
            shared = gen._lm
        gen.__dict__["_lm"] = shared
        started = time.perf_counter()
        texts = gen._generate_batch(
            [gen._prompt(d) for d in passages], [row_seed(args.seed, d.doc_id, 0) for d in passages]
        )
        seconds = time.perf_counter() - started
        queries = [clean_query(t) for t in texts]
        run = bm25.retrieve([Query(str(i), q) for i, q in enumerate(queries) if q], k=10)
        top1 = top10 = 0
        for i, doc in enumerate(passages):
            hits = run.get(str(i), {})
            ranked = sorted(hits, key=lambda d: (-hits[d], d))
            top1 += bool(ranked) and ranked[0] == doc.doc_id
            top10 += doc.doc_id in ranked
        n = len(passages)
        rows.append(
            {"template": name, "queries": n, "top1": top1 / n, "top10": top10 / n, "seconds": round(seconds, 1),
             "examples": queries[:4]}
        )  # fmt: skip
        print(f"{name}: source passage first {top1 / n:.2f}, in top 10 {top10 / n:.2f} ({seconds:.0f} s)")
        for q in queries[:4]:
            print(f"    {q[:110]}")
    if args.out:
        args.out.write_text(json.dumps({"corpus": args.corpus, "seed": args.seed, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
