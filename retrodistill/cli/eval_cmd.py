"""``retrodistill eval``: evaluate retrievers, run files or re-rankers on BEIR / TREC data."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
systems (--system KIND[:ARG][,key=value...], repeatable):
  bm25s                     BM25 with bm25s (k1, b, method, stopwords, stemmer)
  pyserini                  Lucene BM25 via pyserini 0.22.1 (k1, b, threads, index_dir); see README
  dense:MODEL               sentence-transformers model id or folder (index=flat|numpy, batch_size, ...)
  hybrid:MODEL              bm25s + dense:MODEL fused per query (method=rrf|zscore, weight, rrf_k, pool);
                            MODEL may be an index directory (a ColBERT one too)
  run:FILE                  a TREC run file, evaluated as-is
  index:DIR                 an index directory from `retrodistill index build` (nprobe, efSearch, batch_size;
                            a colbert one: ncandidates, exhaustive=true for MaxSim over every passage)
  server:URL                a running `retrodistill serve` (api_key, batch, rerank); --k at most its max_k
  any spec takes label=NAME to name its row.
with --candidates, systems re-rank the candidate lists: dense:MODEL, colbert:MODEL (exact MaxSim),
cross-encoder:MODEL, llm:MODEL,mode=ql|yesno|prp|listwise (teachers), run:FILE.
  a re-ranker takes interpolate=W to mix W * z(its scores) + (1-W) * z(candidate scores) (tune W on dev).
  a retriever spec as --candidates retrieves --k per query; re-rankers re-score the top --depth and the
  rest keep their first-stage order below. ‡ marks a value computed on lists shorter than its cutoff.

examples:
  retrodistill eval --dataset beir/scifact/test --system bm25s --system dense:sentence-transformers/all-MiniLM-L6-v2
  retrodistill eval --dataset path/to/scifact --split test --system bm25s --system pyserini
  retrodistill eval --qrels 2019qrels-pass.txt --queries msmarco-test2019-queries.tsv \\
      --candidates rank_llm/BM25/retrieve_results_dl19.json.gz --system dense:sentence-transformers/all-MiniLM-L6-v2
  retrodistill eval --config eval/configs/scifact.json
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate systems on a BEIR / ir_datasets / TREC DL dataset",
        description="Evaluate retrievers, run files or re-rankers; print a table with paired significance "
        "and write runs, metrics.json, config.json and metrics.png to an output folder.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, help="a JSON or YAML file with the same keys as the flags")
    p.add_argument("--dataset", "-d", help="ir_datasets id (beir/scifact/test) or BEIR folder")
    p.add_argument("--split", help="qrels split of a BEIR folder (default test)")
    p.add_argument("--qrels", help="TREC or BEIR qrels file (overrides the dataset's)")
    p.add_argument("--queries", help="queries TSV (qid<TAB>text) for a re-ranking task")
    p.add_argument("--candidates", help="rank_llm JSON, TREC run, or a retriever spec (bm25s) to re-rank")
    p.add_argument("--system", "-s", action="append", dest="systems", help="system spec (repeatable)")
    p.add_argument("--measure", "-m", action="append", dest="measures", help="ir_measures name (repeatable)")
    p.add_argument("--k", type=int, help="documents retrieved per query, by --candidates SPEC too (default 1000)")
    p.add_argument(
        "--depth", type=int, help="candidates each re-ranker re-scores per query (default 100); the rest stay below"
    )
    p.add_argument("--baseline", help="system name the others are tested against (default: first row)")
    p.add_argument("--significance", choices=["t-test", "randomization"], help="paired test (default t-test)")
    p.add_argument("--output", "-o", help="output folder (default eval/runs/<dataset>-<time>)")
    p.add_argument("--cache-dir", help="embedding cache (default $RETRODISTILL_CACHE or ~/.cache/retrodistill)")
    p.add_argument("--no-plot", dest="plot", action="store_false", default=None, help="skip metrics.png")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from retrodistill.cli.configfile import load_config_file, with_flags
    from retrodistill.eval.config import EvalConfig
    from retrodistill.eval.harness import run_evaluation
    from retrodistill.eval.report import default_output_dir, render_table, write_outputs

    values = with_flags(load_config_file(args.config) if args.config else {}, args, EvalConfig)
    config = EvalConfig(**values)
    report = run_evaluation(config, show_progress=not args.quiet)
    output = Path(config.output) if config.output else default_output_dir(report)
    write_outputs(report, output)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(render_table(report))
    plotted = config.plot and (output / "metrics.png").is_file()  # no matplotlib: eval warned, wrote the rest
    console.print(f"runs, metrics.json, config.json{' and metrics.png' if plotted else ''} in {output}/")
    return 0
