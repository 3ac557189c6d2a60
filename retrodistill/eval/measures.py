"""Measure names as users type them, parsed by ir_measures, and the evaluation of a run."""

from __future__ import annotations

from dataclasses import dataclass

from retrodistill.data.records import Qrels, Run
from retrodistill.errors import ConfigError

DEFAULT_MEASURES = ("nDCG@10", "RR@10", "R@100")
_ALIASES = {"MRR": "RR", "mrr": "RR", "recall": "R", "Recall": "R", "ndcg": "nDCG", "NDCG": "nDCG", "map": "AP"}


def parse_measures(names: list[str] | tuple[str, ...]) -> list[object]:
    """ir_measures measure objects; ``MRR@10`` and ``Recall@100`` are accepted as aliases."""
    import ir_measures

    parsed = []
    for name in names:
        head, sep, tail = name.partition("@")
        base, paren, rest = head.partition("(")
        canonical = _ALIASES.get(base, base) + paren + rest + sep + tail
        try:
            parsed.append(ir_measures.parse_measure(canonical))
        except (ValueError, NameError, SyntaxError, TypeError, AttributeError):
            raise ConfigError(
                f"unknown measure {name!r}; use ir_measures names such as nDCG@10, RR@10, R@100, AP, P@5, RR(rel=2)@10"
            ) from None
    return parsed


@dataclass(frozen=True)
class Evaluation:
    """Mean values and per-query values, keyed by the measure's ir_measures name.

    nDCG follows trec_eval (linear gain = grade), as BEIR and pyserini report it.
    Every judged query counts: a query the run does not answer scores 0 on every measure
    (pytrec_eval alone would silently drop it from the mean).
    """

    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]


def evaluate(run: Run, qrels: Qrels, measures: list[str] | tuple[str, ...] = DEFAULT_MEASURES) -> Evaluation:
    import ir_measures

    parsed = parse_measures(measures)
    names = [str(m) for m in parsed]
    per_query: dict[str, dict[str, float]] = {name: dict.fromkeys(qrels, 0.0) for name in names}
    judged_run = {qid: docs for qid, docs in run.items() if qid in qrels and docs}
    if judged_run:
        for metric in ir_measures.iter_calc(parsed, qrels, judged_run):
            per_query[str(metric.measure)][metric.query_id] = float(metric.value)
    aggregate = {name: (sum(vals.values()) / len(vals) if vals else 0.0) for name, vals in per_query.items()}
    return Evaluation(aggregate, per_query)
