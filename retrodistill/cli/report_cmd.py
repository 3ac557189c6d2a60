"""``retrodistill report``: one self-contained HTML page from eval and distill output folders."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
a RUN_DIR is an output folder of `retrodistill eval` (metrics.json, config.json, runs, metrics.png) or the
work_dir of `retrodistill distill` (config.json, stages.json, eval/, student/train_log.json, score store).

examples:
  retrodistill report eval/results/foundation/scifact
  retrodistill report runs/distill-scifact eval/runs/scifact --out scifact.html
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="one self-contained HTML page from eval / distill output folders",
        description="Write one HTML page (plots inlined, no external assets): metrics with 95% confidence "
        "intervals and paired significance, per-query wins / losses / ties against the baseline, quality "
        "against time, training curves and provenance.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="eval output folder or distill work_dir")
    p.add_argument("--out", "-o", type=Path, default=Path("report.html"), help="HTML file (default report.html)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from retrodistill.eval.html_report import write_report

    out = write_report(args.run_dirs, args.out)
    print(f"report of {len(args.run_dirs)} folder(s) in {out}")
    return 0
