"""Evaluation output: a terminal table, and an output folder with runs, metrics JSON, config and a plot."""

from __future__ import annotations

import platform
import time
from pathlib import Path

from retrodistill import __version__
from retrodistill.atomic import write_json
from retrodistill.data.trec import write_run
from retrodistill.errors import optional
from retrodistill.eval.harness import Report


def default_output_dir(report: Report) -> Path:
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in report.dataset).strip("-")
    return Path("eval") / "runs" / f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}"


TRUNCATED = "computed on lists of at most {n} docs per query"


def render_table(report: Report) -> object:
    """A rich Table: one row per system; a dagger marks p < alpha against the baseline.

    A double dagger marks a value computed on lists shorter than its measure's cutoff (the caption
    says how short); in re-ranking mode the caption says how many candidates were re-ranked.
    """
    from rich.table import Table

    alpha = report.config.alpha
    table = Table(
        title=f"{report.dataset}: {report.n_queries} queries, {report.n_docs} docs", caption="\n".join(captions(report))
    )
    table.add_column("system", style="bold")
    for measure in report.measures:
        table.add_column(measure, justify="right")
    table.add_column("time s", justify="right")
    table.add_column("peak RSS MiB", justify="right")
    for result in report.results:
        cells = []
        for measure in report.measures:
            value = f"{result.evaluation.aggregate[measure]:.4f}"
            p = result.pvalues.get(measure)
            value += " †" if p is not None and p < alpha else ("  " if p is not None else "")
            cells.append(value + (" ‡" if measure in result.truncated else ""))
        name = result.name + (" (baseline)" if result.name == report.baseline else "")
        table.add_row(name, *cells, f"{result.seconds:.1f}", f"{result.peak_rss_mb:.0f}")
    return table


def captions(report: Report) -> list[str]:
    """The table's notes: what a dagger tests, what a double dagger truncates, how deep re-ranking went."""
    lines = []
    if any(r.pvalues for r in report.results):
        test = report.config.significance
        lines.append(f"† p < {report.config.alpha} vs {report.baseline} ({test}, paired, per query)")
    groups: dict[tuple[str, int], list[str]] = {}
    for result in report.results:
        for measure, n in result.truncated.items():
            groups.setdefault((measure, n), []).append(result.name)
    for (measure, n), names in groups.items():
        lines.append(f"‡ {measure} {TRUNCATED.format(n=n)}: {', '.join(names)}")
    if report.depth is not None and len(report.results) > 1:
        top = f"re-rankers re-score the top {report.depth} candidates per query"
        lines.append(f"{top}; the rest keep their first-stage order below")
    return lines


def metrics_json(report: Report) -> dict[str, object]:
    rerank = {"candidates": report.config.candidates, "depth": report.depth}
    return {
        "retrodistill_version": __version__,
        "dataset": report.dataset,
        "queries": report.n_queries,
        "documents": report.n_docs,
        "baseline": report.baseline,
        "significance": report.config.significance,
        **({"rerank": rerank} if report.depth is not None else {}),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "systems": [
            {
                "name": r.name,
                "spec": r.spec,
                "metrics": r.evaluation.aggregate,
                "p_values": r.pvalues,
                "longest_list": r.longest,
                "truncated": {m: TRUNCATED.format(n=n) for m, n in r.truncated.items()},
                "seconds": round(r.seconds, 3),
                "peak_rss_mib": round(r.peak_rss_mb, 1),
                "per_query": r.evaluation.per_query,
            }
            for r in report.results
        ],
    }


def write_outputs(report: Report, output_dir: Path) -> Path:
    """Runs (TREC), metrics.json, config.json (resolved, with version) and metrics.png."""
    output_dir.mkdir(parents=True, exist_ok=True)
    config = report.config.model_dump() | {"output": str(output_dir)}
    write_json(output_dir / "config.json", {"retrodistill_version": __version__, "config": config})
    for result in report.results:
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in result.name)
        write_run(result.run, output_dir / f"{slug}.trec", tag=slug)
    write_json(output_dir / "metrics.json", metrics_json(report))
    if report.config.plot:
        _plot(report, output_dir / "metrics.png")
    report.output_dir = output_dir
    return output_dir


def _plot(report: Report, path: Path) -> None:
    if (matplotlib := optional("matplotlib", skipped=path.name)) is None:
        path.unlink(missing_ok=True)  # a stale plot beside fresh metrics would mislead
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from retrodistill.atomic import atomic_open

    names = [r.name for r in report.results]
    width = 0.8 / max(1, len(names))
    x = np.arange(len(report.measures))
    colors = plt.get_cmap("tab10" if len(names) <= 10 else "tab20").colors
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(report.measures) + 0.6 * len(names)) + 2.0, 4.0))
    top = 0.0
    for i, result in enumerate(report.results):
        values = [result.evaluation.aggregate[m] for m in report.measures]
        top = max(top, *values)
        bars = ax.bar(x + i * width, values, width, label=result.name, color=colors[i % len(colors)])
        ax.bar_label(bars, fmt="%.3f", fontsize=6, rotation=90, padding=2)
    ax.set_xticks(x + width * (len(names) - 1) / 2, report.measures)
    ax.set_ylim(0, min(1.05, top * 1.2 + 0.02))
    ax.set_title(f"{report.dataset} ({report.n_queries} queries)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
