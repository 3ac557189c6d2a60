"""One self-contained HTML page from output folders of ``retrodistill eval`` and ``retrodistill distill``.

Per folder: every system's metrics with 95% confidence intervals (Student t over the per-query values in
metrics.json) and the recorded paired p-values against the baseline; per-query wins, losses and ties against
the baseline with a histogram of the differences; quality against eval time per query; the student's training
curve and the stage times of a distill run; and provenance (versions, teachers with their store fingerprints,
configs). Plots are PNGs inlined as base64, so the page needs nothing beside itself.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from retrodistill import __version__
from retrodistill.errors import DataError, optional
from retrodistill.specs import parse_spec

LEVEL = 0.95
TIE = 1e-9
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-top:.5em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}.ci,.p{color:#666;font-size:.85em}
.base{background:#f7f7ff}.note{color:#555;font-size:.9em}pre{background:#f6f6f6;padding:.6em;overflow:auto}
img{max-width:100%;display:block;margin:.5em 0}.provenance td,.left td{text-align:left}
"""


@dataclass
class RunFolder:
    """What one output folder holds: eval's metrics and config, and for a distill work_dir its extras."""

    path: Path
    kind: str
    metrics: dict[str, Any]
    eval_config: dict[str, Any]
    distill_config: dict[str, Any] | None = None
    student_config: dict[str, Any] | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    train_log: list[dict[str, Any]] = field(default_factory=list)
    teachers: list[dict[str, str]] = field(default_factory=list)
    plot: bytes | None = None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not readable JSON ({exc})", str(path)) from None


def load_folder(path: str | Path) -> RunFolder:
    """Read an eval output folder (metrics.json at the top) or a distill work_dir (eval/metrics.json)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(
            "not a folder; give an output folder of `retrodistill eval` or `retrodistill distill`", str(path)
        )
    distill = not (path / "metrics.json").is_file() and (path / "eval" / "metrics.json").is_file()
    eval_dir = path / "eval" if distill else path
    if not (eval_dir / "metrics.json").is_file():
        raise DataError(
            "no metrics.json; give an output folder of `retrodistill eval` or `retrodistill distill`", str(path)
        )
    metrics = _read_json(eval_dir / "metrics.json")
    systems = metrics.get("systems") if isinstance(metrics, dict) else None
    if not isinstance(systems, list) or not systems or not all("metrics" in s and "name" in s for s in systems):
        raise DataError("metrics.json lists no systems; is this an output of `retrodistill eval`?", str(eval_dir))
    if metrics.get("baseline") not in {s["name"] for s in systems}:
        raise DataError(f"metrics.json: baseline {metrics.get('baseline')!r} is not among its systems", str(eval_dir))
    config = _read_json(eval_dir / "config.json") if (eval_dir / "config.json").is_file() else {}
    plot = (eval_dir / "metrics.png").read_bytes() if (eval_dir / "metrics.png").is_file() else None
    folder = RunFolder(path, "distill" if distill else "eval", metrics, config, plot=plot)
    if distill:
        folder.distill_config = _read_json(path / "config.json") if (path / "config.json").is_file() else None
        if (path / "stages.json").is_file():
            folder.stages = _read_json(path / "stages.json").get("stages", [])
        if (path / "student" / "config.json").is_file():
            folder.student_config = _read_json(path / "student" / "config.json")
        if (path / "student" / "train_log.json").is_file():
            folder.train_log = _read_json(path / "student" / "train_log.json").get("log_history", [])
        folder.teachers = _teachers(path, folder.distill_config)
    return folder


def _teachers(work: Path, config: dict[str, Any] | None) -> list[dict[str, str]]:
    """Each teacher spec of a distill config with the fingerprint recorded in its score store."""
    from retrodistill.teachers.store import read_spec

    inner = (config or {}).get("config", {})
    specs = inner.get("teacher") or []
    specs = [specs] if isinstance(specs, str) else specs
    store = Path(inner["store"]) if inner.get("store") else work / "teacher_scores.sqlite"
    if not store.is_file():  # a relative path from where distill ran, or a moved folder
        store = work / "teacher_scores.sqlite"
    single = len(specs) == 1
    rows = []
    for i, spec in enumerate(specs):
        member = store if single else work / "teachers" / f"{i}-{parse_spec(spec).kind}.sqlite"
        row = {"spec": spec, "store": str(member), "fingerprint": "(no store)", "model": ""}
        if member.is_file():
            try:
                recorded = read_spec(member)
                row |= {"fingerprint": recorded.fingerprint(), "model": f"{recorded.model}@{recorded.revision}"}
            except DataError as exc:
                row["fingerprint"] = f"(unreadable: {exc})"
        rows.append(row)
    if len(specs) > 1 and store.is_file():
        try:
            fused = read_spec(store)
            fingerprint = fused.fingerprint()
            rows.append(
                {"spec": f"ensemble of {len(specs)}", "store": str(store), "fingerprint": fingerprint, "model": ""}
            )
        except DataError as exc:
            rows.append({"spec": "ensemble", "store": str(store), "fingerprint": f"(unreadable: {exc})", "model": ""})
    return rows


def confidence_interval(values: list[float] | np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Student-t interval of the mean of ``values``, clipped to their range (a mean of values in [0, 1] is
    never above 1); a single value (or no spread) is its own interval."""
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean()) if len(x) else math.nan
    if len(x) < 2 or np.allclose(x, x[0]):
        return mean, mean
    half = float(t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return max(mean - half, float(x.min())), min(mean + half, float(x.max()))


def win_loss_tie(system: list[float], baseline: list[float], tie: float = TIE) -> tuple[int, int, int]:
    """Queries where ``system`` beats, loses to and ties with ``baseline`` (paired, same query order)."""
    diff = np.asarray(system, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    return int((diff > tie).sum()), int((diff < -tie).sum()), int((np.abs(diff) <= tie).sum())


def per_query(folder: RunFolder, name: str, measure: str) -> list[float] | None:
    """One system's per-query values of ``measure`` in the baseline's query order (None if not recorded)."""
    systems = {s["name"]: s for s in folder.metrics["systems"]}
    base = systems[folder.metrics["baseline"]].get("per_query", {}).get(measure)
    values = systems[name].get("per_query", {}).get(measure)
    if not base or not values or set(base) != set(values):
        return None
    return [float(values[q]) for q in base]


def measures(folder: RunFolder) -> list[str]:
    return list(folder.metrics["systems"][0]["metrics"])


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _table(head: list[str], rows: list[str], cls: str = "") -> str:
    ths = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<table class="{cls}"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _metrics_table(folder: RunFolder, alpha: float) -> str:
    baseline, rows = folder.metrics["baseline"], []
    for system in folder.metrics["systems"]:
        name = system["name"]
        cells = [f"<td>{escape(name)}{' (baseline)' if name == baseline else ''}</td>"]
        for m in measures(folder):
            value, p = system["metrics"][m], system.get("p_values", {}).get(m)
            values = per_query(folder, name, m)
            lo, hi = confidence_interval(values) if values else (None, None)
            mark = " †" if p is not None and p < alpha else ""
            cells.append(
                f'<td data-system="{escape(name)}" data-measure="{escape(m)}"><span class="v">{_fmt(value)}</span>'
                f'{mark}<br><span class="ci">[{_fmt(lo)}, {_fmt(hi)}]</span>'
                + (f' <span class="p">p={p:.3g}</span>' if p is not None else "")
                + "</td>"
            )
        seconds = system.get("seconds")
        cells.append(f"<td>{_fmt(seconds, 1) if seconds is not None else 'n/a'}</td>")
        row_class = ' class="base"' if name == baseline else ""
        rows.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    return _table(["system", *measures(folder), "eval s"], rows, "metrics")


def _wins_table(folder: RunFolder) -> str:
    baseline, rows = folder.metrics["baseline"], []
    for system in folder.metrics["systems"]:
        if system["name"] == baseline:
            continue
        cells = [f"<td>{escape(system['name'])}</td>"]
        for m in measures(folder):
            values, base = per_query(folder, system["name"], m), per_query(folder, baseline, m)
            if values is None or base is None:
                cells.append("<td>n/a</td>")
                continue
            wins, losses, ties = win_loss_tie(values, base)
            diff = np.asarray(values) - np.asarray(base)
            lo, hi = confidence_interval(diff)
            cells.append(
                f'<td data-system="{escape(system["name"])}" data-measure="{escape(m)}" data-wins="{wins}" '
                f'data-losses="{losses}" data-ties="{ties}">{wins} / {losses} / {ties}<br>'
                f'<span class="ci">Δ {float(diff.mean()):+.4f} [{lo:+.4f}, {hi:+.4f}]</span></td>'
            )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return _table(["system", *(f"{m} W / L / T" for m in measures(folder))], rows, "wins") if rows else ""


def _img(fig: Any, alt: str) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return _png(buffer.getvalue(), alt)


def _png(data: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def _histogram(plt: Any, folder: RunFolder, measure: str) -> str:
    baseline = folder.metrics["baseline"]
    diffs = []
    for system in folder.metrics["systems"]:
        values, base = per_query(folder, system["name"], measure), per_query(folder, baseline, measure)
        if system["name"] != baseline and values is not None and base is not None:
            diffs.append((system["name"], np.asarray(values) - np.asarray(base)))
    if not diffs:
        return ""
    cols = min(4, len(diffs))
    rows = math.ceil(len(diffs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.3 * rows), squeeze=False, sharey=True)
    bins = np.arange(-1.05, 1.0501, 0.1)
    for ax, (name, diff) in zip(axes.flat, diffs, strict=False):
        ax.hist(np.clip(diff, -1.0, 1.0), bins=bins, color="tab:blue", edgecolor="white")
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"{measure}: system − {baseline}", fontsize=8)
    for ax in list(axes.flat)[len(diffs) :]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("queries")
    fig.tight_layout()
    return _img(fig, f"per-query {measure} differences against {baseline}")


def _latency(plt: Any, folder: RunFolder, measure: str) -> str:
    n = folder.metrics.get("queries") or 0
    points = [(s, s["seconds"] / n) for s in folder.metrics["systems"] if n and (s.get("seconds") or 0) > 0]
    if not points:
        return ""
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (system, per_q) in enumerate(points):
        values = per_query(folder, system["name"], measure)
        y = system["metrics"][measure]
        lo, hi = confidence_interval(values) if values else (y, y)
        ax.errorbar([per_q], [y], yerr=[[y - lo], [hi - y]], fmt="o", capsize=3)
        ax.annotate(system["name"], (per_q, y), textcoords="offset points", xytext=(5, 4 if i % 2 else -10), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("eval wall seconds / queries (includes indexing or encoding the corpus)")
    ax.set_ylabel(f"{measure} (95% CI)")
    fig.tight_layout()
    return _img(fig, f"{measure} against eval seconds per query")


def _curve(plt: Any, history: list[dict[str, Any]]) -> str:
    loss = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    evals = [(h["step"], v) for h in history for k, v in h.items() if k.startswith("eval_") and k.endswith("ndcg@10")]
    if not loss and not evals:
        return ""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if loss:
        ax.plot(*zip(*loss, strict=True), color="tab:blue", label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if evals:
        ax2 = ax.twinx()
        ax2.plot(*zip(*evals, strict=True), "o-", color="tab:orange", label="eval nDCG@10")
        ax2.set_ylabel("nDCG@10 (in training)")
    fig.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _img(fig, "student training curve")


def _stages_table(stages: list[dict[str, Any]]) -> str:
    rows = []
    for row in stages:
        detail = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("stage", "seconds"))
        rows.append(
            f"<tr><td>{escape(str(row.get('stage', '')))}</td><td>{_fmt(row.get('seconds'), 1)}</td>"
            f"<td>{escape(detail)}</td></tr>"
        )
    return _table(["stage", "seconds", "detail"], rows, "stages left")


def _provenance(folder: RunFolder) -> str:
    m = folder.metrics
    items = [
        ("folder", str(folder.path)),
        ("kind", f"retrodistill {folder.kind}"),
        ("retrodistill version", str(m.get("retrodistill_version", "unknown"))),
        ("machine", ", ".join(f"{k} {v}" for k, v in (m.get("machine") or {}).items())),
        ("significance", f"{m.get('significance', 'unknown')}, paired per query, against {m['baseline']}"),
    ]
    lines = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in items)
    html = f'<table class="provenance">{lines}</table>'
    if folder.teachers:
        rows = [
            f"<tr><td>{escape(t['spec'])}</td><td>{escape(t['model'])}</td><td><code>{escape(t['fingerprint'])}"
            f"</code></td><td>{escape(t['store'])}</td></tr>"
            for t in folder.teachers
        ]
        html += "<h3>Teachers</h3>" + _table(
            ["spec", "model@revision", "fingerprint", "score store"], rows, "teachers left"
        )
    configs = [("eval config.json", folder.eval_config), ("distill config.json", folder.distill_config)]
    for title, config in [*configs, ("student config.json", folder.student_config)]:
        if config:
            text = escape(json.dumps(config, indent=2, sort_keys=True, default=str))
            html += f"<details><summary>{escape(title)}</summary><pre>{text}</pre></details>"
    return html


def _section(i: int, folder: RunFolder, plt: Any | None) -> str:
    m = folder.metrics
    alpha = float(folder.eval_config.get("config", {}).get("alpha", 0.05))
    first = measures(folder)[0]
    title = f"{escape(str(m.get('dataset', folder.path.name)))} — {escape(str(folder.path))}"
    parts = [
        f'<section id="run-{i}"><h2>{title}</h2>',
        f'<p class="note">{m.get("queries", "?")} queries, {m.get("documents", "?")} documents; baseline '
        f"<b>{escape(m['baseline'])}</b>. Cells: mean, 95% CI (Student t over the per-query values, clipped to "
        f"their range), p-value of the paired {escape(str(m.get('significance', 'test')))} against the baseline; "
        f"† p &lt; {alpha}.</p>",
        _metrics_table(folder, alpha),
    ]
    wins = _wins_table(folder)
    if wins:
        parts += [
            "<h3>Per query against the baseline</h3>",
            f'<p class="note">Wins / losses / ties (|difference| ≤ {TIE:g} is a tie); Δ is the mean difference '
            "with its 95% CI.</p>",
            wins,
        ]
    if plt is not None:
        parts.append(_histogram(plt, folder, first) if wins else "")
        latency = _latency(plt, folder, first)
        if latency:
            parts += ["<h3>Quality against time</h3>", latency]
        if folder.train_log:
            parts += ["<h3>Student training</h3>", _curve(plt, folder.train_log)]
    if folder.plot is not None:
        parts += ["<h3>metrics.png (written by eval)</h3>", _png(folder.plot, "metrics.png")]
    if folder.stages:
        parts += ["<h3>Stages</h3>", _stages_table(folder.stages)]
    parts += ["<h3>Provenance</h3>", _provenance(folder), "</section>"]
    return "\n".join(p for p in parts if p)


def render_report(folders: list[RunFolder]) -> str:
    """The whole page as one string."""
    plt = None
    if (matplotlib := optional("matplotlib", skipped="the report's plots")) is not None:
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    toc = "".join(
        f'<li><a href="#run-{i}">{escape(str(f.metrics.get("dataset", "")))}</a> ({f.kind}, '
        f"{len(f.metrics['systems'])} systems): {escape(str(f.path))}</li>"
        for i, f in enumerate(folders)
    )
    note = "" if plt is not None else "<p class=\"note\">Plots left out: pip install 'retrodistill[plot]'.</p>"
    body = "\n".join(_section(i, f, plt) for i, f in enumerate(folders))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>retrodistill report</title>'
        f"<style>{STYLE}</style></head><body><h1>retrodistill report</h1><ul>{toc}</ul>{note}\n{body}\n"
        f'<p class="note">Written by retrodistill {escape(__version__)}.</p></body></html>\n'
    )


def write_report(paths: list[str | Path], out: str | Path) -> Path:
    """Read every folder (all are checked before anything is written), render, and write ``out`` atomically."""
    from retrodistill.atomic import write_text

    folders = [load_folder(p) for p in paths]
    out = Path(out)
    write_text(out, render_report(folders))
    return out
