"""``retrodistill generate``: pseudo-queries for a corpus with no judged queries (resumes after a kill)."""

from __future__ import annotations

import argparse

from retrodistill.cli.executor_args import add_executor_args
from retrodistill.generation.templates import TEMPLATES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="write pseudo-queries for corpus passages with a causal LM",
        description="Sample passages from a corpus and let a causal LM write queries for them (doc2query / "
        "InPars / GPL style) into a resumable SQLite store; re-running with the same --out resumes. Also "
        "writes a BEIR folder (queries.jsonl, corpus.jsonl, qrels/generated.tsv naming each query's source "
        "passage) for `teach --dataset FOLDER --split generated`.",
    )
    p.add_argument("--corpus", "-c", required=True, help="BEIR folder, corpus.jsonl[.gz] or ir_datasets id")
    p.add_argument("--out", "-o", required=True, help="query store (SQLite), e.g. queries.sqlite")
    p.add_argument("--export", help="BEIR folder to write (default: OUT without suffix + '-beir')")
    p.add_argument("--model", default=None, help="Hugging Face causal LM id (default SmolLM2-135M-Instruct GGUF)")
    p.add_argument("--gguf-file", help="GGUF file inside --model (default set for the default model)")
    p.add_argument(
        "--template",
        default="gpl",
        help=f"{', '.join(TEMPLATES)} (default gpl), a text file with {{passage}}, or a mix such as gpl+finding",
    )
    p.add_argument("--per-passage", type=int, default=3, help="queries sampled per passage (default 3)")
    p.add_argument("--passages", type=int, default=1000, help="passages sampled from the corpus (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seeds the passage sample and every query's sampling")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per model.generate call (default 8)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens per query at most (default 32)")
    p.add_argument("--max-passage-tokens", type=int, default=200, help="passages are cut to this (default 200)")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=0.95)
    add_executor_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from retrodistill.cli.executor_args import executor_from_args
    from retrodistill.data.corpus import load_corpus
    from retrodistill.generation.export import export_queries
    from retrodistill.generation.generator import DEFAULT_MODEL, QueryGenerator, sample_passages
    from retrodistill.generation.store import QueryStore

    generator = QueryGenerator(
        args.model or DEFAULT_MODEL,
        args.gguf_file,
        args.template,
        args.seed,
        args.batch_size,
        args.max_new_tokens,
        args.temperature,
        args.top_p,
        args.max_passage_tokens,
    )
    corpus = load_corpus(args.corpus)
    passages = sample_passages(corpus, args.passages, args.seed)
    out = Path(args.out)
    with QueryStore(out, generator.spec) as store:
        executor = executor_from_args(args)
        counts = generator.generate(passages, args.per_passage, store, not args.quiet, executor)
        folder = export_queries(store, corpus, args.export or out.with_name(out.stem + "-beir"))
    summary = {"store": str(out), "export": str(folder), "spec": generator.spec.fingerprint(), **counts}
    print(json.dumps(summary, indent=2))
    return 0
