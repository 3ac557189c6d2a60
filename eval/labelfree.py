"""Label-free distillation and its ablations on one dataset: one command, one table with every stage's time.

    python eval/labelfree.py eval/configs/labelfree/scifact-ablation.json

The config names a ``base`` distill config (a corpus alone + ``generate``, e.g. labelfree/scifact.json,
the configuration users get) and ``variants``: name -> keys merged over the base (``student`` and
``generate`` merge key by key). ``"supervised": true`` marks the fine-tuning baseline: the base
student trained on a labelled ``train_dataset``'s qrels with InfoNCE over BM25 negatives, no teacher.
Every variant runs ``distill`` in its own folder under the base work_dir; variants that generate
share the base's query store (copied in), so the queries are written once. The base run adds BM25,
the initialisation and each teacher re-ranking BM25's top ``teacher_eval_depth`` to the table.
Paired p-values are each student's against BM25 on the same test queries.
Results: <out>/<name>.json and .md (default eval/results/labelfree/).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any


def _merge(base: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in keys.items():
        out[key] = {**(base.get(key) or {}), **value} if key in ("student", "generate") and value else value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, default=Path("eval/results/labelfree"))
    parser.add_argument(
        "--only", action="append", help="run the default and only these variants (repeatable); the table holds those"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from retrodistill.cli.configfile import load_config_file
    from retrodistill.pipeline import DistillConfig, run_distill

    spec = load_config_file(args.config)
    base_path = args.config.parent / spec["base"]
    base = load_config_file(base_path)
    root = Path(base["work_dir"])
    runs: dict[str, dict[str, Any]] = {}
    variants: dict[str, dict[str, Any]] = {"default": {}, **spec.get("variants", {})}
    for name, keys in variants.items():
        if args.only and name != "default" and name not in args.only:
            continue
        keys = dict(keys)
        if keys.pop("supervised", False):
            runs[name] = _supervised(name, _merge(base, keys), root / name)
            continue
        raw = _merge(base, {**keys, "work_dir": str(root if name == "default" else root / name)})
        if name != "default":
            raw["teacher_eval_depth"] = 0
        config = DistillConfig(**raw)
        if name != "default":
            _seed_from_default(config, DistillConfig(**{**base, "work_dir": str(root)}))
        started = time.perf_counter()
        result = run_distill(config)
        runs[name] = {"report": result.report, "stages": result.stages, "seconds": time.perf_counter() - started}
    _write_table(spec.get("name") or args.config.stem, base, variants, runs, args.out)


def _seed_from_default(config: Any, default: Any) -> None:
    """Copy the default run's stores that this variant would compute again: the query store when both
    write the same queries (the same model, template and sampler: the fields a query store's spec records),
    and each teacher's store when, besides that, the teacher, the corpus and the candidate settings are the
    same. Store keys are (query id, passage) and a generated query's id is its source passage and sample,
    so scores of another template's queries would be read as this one's; a variant reads only the pairs
    it asks for."""
    work, root = Path(config.work_dir), Path(default.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    fields = ("model", "gguf_file", "template", "seed", "max_new_tokens", "temperature", "top_p", "max_passage_tokens")
    mine_gen, base_gen = config.generate, default.generate
    same_queries = (mine_gen is None and base_gen is None) or (
        mine_gen is not None
        and base_gen is not None
        and all(getattr(mine_gen, f) == getattr(base_gen, f) for f in fields)
    )
    copies = []
    if same_queries and mine_gen is not None:
        copies.append((root / "queries.sqlite", work / "queries.sqlite"))
    same = ("train_dataset", "candidates", "depth", "force_positives")
    if same_queries and all(getattr(config, k) == getattr(default, k) for k in same):
        mine = dict(zip(config.teachers, config.member_store_paths(), strict=True))
        for spec, path in zip(default.teachers, default.member_store_paths(), strict=True):
            if spec in mine:
                copies.append((path, mine[spec]))
    for source, target in copies:
        if source.exists() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy_store(source, target)


def _copy_store(source: Path, target: Path) -> None:
    """SQLite's online backup: a WAL-mode store copied with its committed pages, not a torn file."""
    import sqlite3

    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _supervised(name: str, raw: dict[str, Any], work: Path) -> dict[str, Any]:
    """The student trained on real queries and qrels alone (no teacher), evaluated like the others."""
    from retrodistill.eval.config import EvalConfig
    from retrodistill.eval.harness import run_evaluation
    from retrodistill.specs import SystemSpec
    from retrodistill.training import train_student
    from retrodistill.training.config import StudentConfig

    student = StudentConfig(
        **{**raw["student"], "loss": {"infonce": 1.0}},
        dataset=raw["train_dataset"],
        split=raw.get("train_split", "train"),
        store=None,
        output=str(work),
    )
    started = time.perf_counter()
    if not (work / "model").is_dir():
        train_student(student)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    report = run_evaluation(
        EvalConfig(
            dataset=raw["eval_dataset"],
            split=raw.get("eval_split", "test"),
            systems=["bm25s", SystemSpec("dense", str(work / "model"), label="student")],
        )
    )
    stages = [
        {"stage": "train student (qrels)", "seconds": round(train_s, 1)},
        {"stage": "evaluate", "seconds": round(time.perf_counter() - started, 1)},
    ]
    return {"report": report, "stages": stages, "seconds": train_s + stages[-1]["seconds"]}


def _write_table(name: str, base: dict[str, Any], variants: dict[str, dict], runs: dict[str, dict], out: Path) -> None:
    default = runs["default"]["report"]
    measures = default.measures
    rows: list[dict[str, Any]] = []
    for result in default.results:
        if result.name == "student":
            continue
        rows.append({"system": result.name, **_metrics(result, measures), "seconds": round(result.seconds, 1)})
    ensemble = _ensemble_row(base, default, measures)
    if ensemble is not None:
        last_teacher = max(i for i, r in enumerate(rows) if r["system"].startswith("teacher"))
        rows.insert(last_teacher + 1, ensemble)
    for variant, run in runs.items():  # the variants that ran (all, or the default plus --only)
        student = next(r for r in run["report"].results if r.name == "student")
        stages = {s["stage"]: s["seconds"] for s in run["stages"]}
        rows.append(
            {
                "system": f"student: {variant}",
                **_metrics(student, measures),
                "seconds": round(sum(stages.values()), 1),
                "stages": stages,
                "variant": variants[variant],
            }
        )
    out.mkdir(parents=True, exist_ok=True)
    summary = {"dataset": default.dataset, "queries": default.n_queries, "base": base, "rows": rows}
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    stage_names = list(dict.fromkeys(s for row in rows for s in row.get("stages", {})))
    head = ["system", *measures, "p (nDCG@10 vs bm25s)", *[f"{s} s" for s in stage_names]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["system"], *[f"{row[m]:.4f}" for m in measures], _p(row)]
        cells += [str(row.get("stages", {}).get(s, "")) for s in stage_names]
        lines.append("| " + " | ".join(cells) + " |")
    (out / f"{name}.md").write_text(
        f"# {name}: {default.dataset}, {default.n_queries} queries\n\n" + "\n".join(lines) + "\n"
    )
    print("\n".join(lines))


def _ensemble_row(base: dict[str, Any], default: Any, measures: list[str]) -> dict[str, Any] | None:
    """The teachers' ensemble re-ranking BM25's top ``teacher_eval_depth``: the member rows' runs (written by the
    evaluation in ``<work_dir>/eval/``) fused over the candidates they scored, as the store fuses them, scored
    with the same measures and paired against bm25s. None for a single teacher."""
    from retrodistill.data.load import load_dataset
    from retrodistill.data.trec import read_run
    from retrodistill.eval.measures import evaluate
    from retrodistill.eval.significance import paired_test
    from retrodistill.pipeline import DistillConfig
    from retrodistill.teachers.ensemble import fuse_reranked

    config = DistillConfig(**base)
    members = [r.name for r in default.results if r.name.startswith("teacher-")]
    if len(config.teachers) < 2 or len(members) != len(config.teachers):
        return None
    folder = Path(config.work_dir) / "eval"
    runs = [read_run(folder / f"{m}.trec") for m in members]
    first = read_run(folder / "bm25s.trec")
    fused = fuse_reranked(runs, first, config.teacher_eval_depth, config.teacher_weights, config.ensemble)
    qrels = load_dataset(config.eval_dataset, config.eval_split).qrels
    evaluation = evaluate(fused, qrels, measures)
    bm25 = next(r for r in default.results if r.name == "bm25s").evaluation.per_query
    qids = sorted(qrels)
    pvalues = {
        m: round(paired_test([evaluation.per_query[m][q] for q in qids], [bm25[m][q] for q in qids]), 4)
        for m in measures
    }
    values = {m: round(v, 4) for m, v in evaluation.aggregate.items() if m in measures}
    return {"system": f"teacher-ensemble ({config.ensemble})", **values, "p_vs_bm25s": pvalues}


def _metrics(result: Any, measures: list[str]) -> dict[str, Any]:
    values = {m: round(v, 4) for m, v in result.evaluation.aggregate.items() if m in measures}
    return {**values, "p_vs_bm25s": {m: round(p, 4) for m, p in result.pvalues.items()}}


def _p(row: dict[str, Any]) -> str:
    p = row.get("p_vs_bm25s", {}).get("nDCG@10")
    return "" if p is None else f"{p:.4f}"


if __name__ == "__main__":
    main()
