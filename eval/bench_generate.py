"""Throughput of batched pseudo-query generation vs a one-prompt-at-a-time loop, same model, same run.

Same jobs for both paths: ``passages`` SciFact passages sampled with ``seed`` (cut at
``max_passage_tokens``), one query each, ``max_new_tokens`` at most, the doc2query template and the
default SmolLM2-135M-Instruct GGUF. Paths, each into its own fresh query store:

* ``batched``: ``QueryGenerator.generate`` with ``batch_size`` prompts per ``model.generate`` call
  (left padding, KV cache, per-row seeded sampling);
* ``one at a time``: the same generator with ``batch_size=1`` (one prompt per ``model.generate``).

Reported: queries/s of each and their ratio, how many queries are identical in both (per-row seeds make
them equal up to the numerical effect of padding), and this process's peak RSS after loading and after each
path (ru_maxrss is a high-water mark, so later values include earlier peaks).

    nice -n 10 python eval/bench_generate.py --passages 32 --batch-size 8 --out eval/results/generation/bench.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="beir/scifact/test")
    parser.add_argument("--passages", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--max-passage-tokens", type=int, default=64)
    parser.add_argument("--out", default="eval/results/generation/bench.json")
    args = parser.parse_args()

    import torch

    from retrodistill.data.corpus import load_corpus
    from retrodistill.generation.generator import QueryGenerator, sample_passages
    from retrodistill.generation.store import QueryStore

    corpus = load_corpus(args.corpus)
    passages = sample_passages(corpus, args.passages, args.seed)
    common = {"seed": args.seed, "max_new_tokens": args.max_new_tokens, "max_passage_tokens": args.max_passage_tokens}
    batched = QueryGenerator(batch_size=args.batch_size, **common)
    started = time.perf_counter()
    batched.load()
    load_s = time.perf_counter() - started
    single = QueryGenerator(batch_size=1, **common)
    single.__dict__["_lm"] = batched._lm  # the same weights in memory
    result: dict[str, object] = {
        "config": vars(args),
        "model": batched.spec.revision,
        "template": batched.spec.template,
        "load_s": round(load_s, 1),
        "rss_mb_after_load": round(_rss_mb(), 1),
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    texts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, gen in (("batched", batched), ("one_at_a_time", single)):
            with QueryStore(Path(tmp) / f"{name}.sqlite", gen.spec) as store:
                t0 = time.perf_counter()
                counts = gen.generate(passages, 1, store, show_progress=False)
                seconds = time.perf_counter() - t0
                con = store._connect(create=False)
                texts[name] = dict(((d, s), t) for d, s, t in con.execute("SELECT doc_id, sample, text FROM attempts"))
            result[name] = {
                "queries": len(passages),
                "seconds": round(seconds, 2),
                "queries_per_s": round(len(passages) / seconds, 3),
                "kept": counts["kept"],
                "duplicate": counts["duplicate"],
                "empty": counts["empty"],
                "rss_mb_peak_so_far": round(_rss_mb(), 1),
            }
            print(name, result[name], flush=True)
    result["speedup_batched_over_single"] = round(
        result["batched"]["queries_per_s"] / result["one_at_a_time"]["queries_per_s"], 2
    )
    result["identical_queries"] = sum(texts["batched"][k] == texts["one_at_a_time"][k] for k in texts["batched"])
    result["examples"] = [{"doc_id": d, "batched": t} for (d, _), t in list(texts["batched"].items())[:5]]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from retrodistill.atomic import write_json

    write_json(out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "examples"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
