"""The teacher interface: one public ``score`` doing the bookkeeping, one hook per granularity.

Granularities and how their answers become a ranking (higher score = more relevant):

* pointwise: ``_score_pairs`` gives one score per (query, passage); the run holds those scores.
* pairwise: ``_prefer`` gives P(A more relevant than B) for a prompt showing A first. For a query's
  list of n candidates (first-stage order), the pairs (i, j) with 0 < j - i <= ``window`` are compared
  (all pairs when ``window`` is None) and each pair is asked in both orders, so a position bias toward
  the first slot cancels: P(d > e) = (p(d, e) + 1 - p(e, d)) / 2. A document's score is the sum of its
  win probabilities over the pairs it took part in (a soft Copeland count), minus a 1e-6 * position
  tie-break that keeps the input order among equals. Cost: 2 * sum_i min(window, n - 1 - i) prompts
  per query, e.g. n=20: window 3 -> 108, window 5 -> 170, all pairs -> 380 (n(n-1)).
* listwise: ``_rank_window`` returns a permutation of a window of passages. As in RankGPT, a window of
  ``list_window`` passages slides from the back of the list to the front by ``stride``, so strong
  passages bubble up; the last window is clamped to start at 0. Scores are -rank (1-based).
  Cost: ceil(max(n - list_window, 0) / stride) + 1 windows per query.

Scores are written to a ``ScoreStore`` chunk by chunk (pointwise, pairwise) or query by query
(listwise), so a killed run resumes where it stopped; keys already stored are skipped.

``executor`` (``retrodistill.executors``; None = this process) runs the hooks on other workers, e.g. Ray
Data actors each holding a copy of this teacher: chunks of pairs or prompts go out as payloads (listwise:
one query each, since its windows depend on the previous window's answer), their scores come back here and
are stored as they arrive, so resuming works the same.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from retrodistill.data.records import Document, Query, Run
from retrodistill.errors import ConfigError, DataError
from retrodistill.teachers.aggregate import aggregate_preferences, comparison_pairs, sliding_windows
from retrodistill.teachers.records import Granularity, Preference, ScoredPair, TeacherSpec

if TYPE_CHECKING:
    from retrodistill.teachers.store import ScoreStore

log = logging.getLogger(__name__)

Candidates = Mapping[str, Sequence[str]]


class Teacher(ABC):
    """A relevance teacher. Subclasses set ``granularity`` and implement its hook and ``spec``."""

    granularity: Granularity = "pointwise"
    chunk_size: int = 512

    def __init__(self, window: int | None = 3, list_window: int = 20, stride: int = 10) -> None:
        self.window = window
        self.list_window = int(list_window)
        self.stride = int(stride)
        self.repairs: Counter[str] = Counter()
        self.last_rate: float = 0.0
        self.executor: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """A copy for another worker (``executor``) carries the teacher, not the executor."""
        return {**self.__dict__, "executor": None}

    @property
    @abstractmethod
    def spec(self) -> TeacherSpec:
        """The teacher's identity; must not load the model."""

    def score(
        self,
        queries: Mapping[str, Query],
        candidates: Candidates,
        corpus: Mapping[str, Document],
        store: ScoreStore | None = None,
        show_progress: bool = True,
    ) -> Run:
        """Scores of every candidate of every query (candidate lists in first-stage order)."""
        check_inputs(queries, candidates, corpus)
        if store is not None and store.spec.fingerprint() != self.spec.fingerprint():
            raise ConfigError(f"store {store.path} belongs to another teacher ({store.spec.describe()})")
        self._prepare(candidates, corpus)
        if self.granularity == "pointwise":
            return self._score_pointwise(queries, candidates, corpus, store, show_progress)
        if self.granularity == "pairwise":
            return self._score_pairwise(queries, candidates, corpus, store, show_progress)
        return self._score_listwise(queries, candidates, corpus, store, show_progress)

    def load(self) -> None:  # noqa: B027  (a teacher without a model has nothing to load)
        """Load the model now (scoring loads it on first use otherwise)."""

    def _prepare(self, candidates: Candidates, corpus: Mapping[str, Document]) -> None:  # noqa: B027
        """Per-corpus work before scoring (an index, cached embeddings); nothing by default."""

    def pending(self, candidates: Candidates, store: ScoreStore | None) -> int:
        """How many units (pairs, prompts or queries) are not in ``store`` yet."""
        if self.granularity == "pointwise":
            done = store.keys() if store else set()
            return sum(1 for q, ids in candidates.items() for d in ids if (q, d, "") not in done)
        if self.granularity == "pairwise":
            done = store.keys() if store else set()
            return sum(1 for key in self._pair_keys(candidates) if key not in done)
        finished = store.complete_queries(candidates) if store else set()
        return sum(1 for q in candidates if q not in finished)

    def _score_pointwise(self, queries, candidates, corpus, store, show_progress) -> Run:
        done = store.keys() if store else set()
        todo = [(q, d) for q, ids in candidates.items() for d in ids if (q, d, "") not in done]
        results: dict[tuple[str, str], float] = {}
        self._run_chunks(
            todo,
            "_score_pairs",
            lambda chunk: [(queries[q].text, corpus[d].full_text()) for q, d in chunk],
            lambda chunk, vals: [ScoredPair(q, d, v) for (q, d), v in zip(chunk, vals, strict=True)],
            results,
            store,
            show_progress,
            "pairs",
        )
        stored = store.scores(list(candidates)) if store else {}
        run: Run = {}
        for q, ids in candidates.items():
            run[q] = {d: results[(q, d)] if (q, d) in results else stored[q][d] for d in ids}
        return run

    def _pair_keys(self, candidates: Candidates) -> list[tuple[str, str, str]]:
        keys = []
        for q, ids in candidates.items():
            for i, j in comparison_pairs(len(ids), self.window):
                keys += [(q, ids[i], ids[j]), (q, ids[j], ids[i])]
        return keys

    def _score_pairwise(self, queries, candidates, corpus, store, show_progress) -> Run:
        done = store.keys() if store else set()
        todo = [key for key in self._pair_keys(candidates) if key not in done]
        results: dict[tuple[str, str, str], float] = {}

        self._run_chunks(
            todo,
            "_prefer",
            lambda chunk: [(queries[q].text, corpus[a].full_text(), corpus[b].full_text()) for q, a, b in chunk],
            lambda chunk, vals: [Preference(q, a, b, v) for (q, a, b), v in zip(chunk, vals, strict=True)],
            results,
            store,
            show_progress,
            "prompts",
        )
        prefs = store.preferences(list(candidates)) if store else {}
        for (q, a, b), p in results.items():
            prefs.setdefault(q, {})[(a, b)] = p
        return {q: aggregate_preferences(ids, prefs.get(q, {})) for q, ids in candidates.items()}

    def _score_listwise(self, queries, candidates, corpus, store, show_progress) -> Run:
        finished = store.complete_queries(candidates) if store else set()
        todo = [q for q in candidates if q not in finished]
        windows = {q: len(sliding_windows(len(candidates[q]), self.list_window, self.stride)) for q in todo}
        desc = f"{self.spec.kind} listwise"
        bar = tqdm(total=sum(windows.values()), desc=desc, unit="window", disable=not show_progress)
        run: Run = store.scores(list(finished)) if store else {}
        start = time.perf_counter()
        payloads = [(queries[q].text, [corpus[d].full_text() for d in candidates[q]]) for q in todo]
        if self.executor is None:
            answers: Any = ((i, self._order_query(p)) for i, p in enumerate(payloads))
        else:
            answers = self.executor.map_payloads(partial(_teacher_hook, self, "_order_query"), payloads)
        for i, (order, repairs) in answers:
            q = todo[i]
            if self.executor is not None:  # a worker's copy counted them; locally self.repairs already has them
                self.repairs.update(repairs)
            rows = [ScoredPair(q, candidates[q][j], -float(rank)) for rank, j in enumerate(order, start=1)]
            if store is not None:
                store.add(rows)
            run[q] = {row.docid: row.score for row in rows}
            bar.update(windows[q])
        bar.close()
        self.last_rate = sum(windows.values()) / max(time.perf_counter() - start, 1e-9)
        return {q: run[q] for q in candidates}

    def _order_query(self, payload: tuple[str, list[str]]) -> tuple[list[int], Counter[str]]:
        """One query's candidate texts (first-stage order) re-ordered by the sliding windows: the indexes,
        most relevant first, and the repairs ``_rank_window`` made to its answers on the way."""
        query, texts = payload
        before = Counter(self.repairs)
        order = list(range(len(texts)))
        for lo, hi in sliding_windows(len(order), self.list_window, self.stride):
            span = order[lo:hi]
            perm = self._rank_window(query, [texts[j] for j in span])
            if sorted(perm) != list(range(len(span))):
                raise RuntimeError(f"{type(self).__name__}._rank_window returned {perm}, not a permutation")
            order[lo:hi] = [span[j] for j in perm]
        return order, Counter(self.repairs) - before

    def _run_chunks(self, todo, hook: str, inputs: Callable, to_rows, results, store, show_progress, unit) -> None:
        """Apply ``hook`` to ``inputs(chunk)`` for each chunk of ``todo`` (here, or on ``self.executor``'s
        workers), storing each chunk's rows as its answer arrives."""
        bar = tqdm(total=len(todo), desc=f"{self.spec.kind} {self.granularity}", unit=unit, disable=not show_progress)
        start = time.perf_counter()
        chunks = [todo[lo : lo + self.chunk_size] for lo in range(0, len(todo), self.chunk_size)]
        if self.executor is None:
            answers: Any = ((i, getattr(self, hook)(inputs(chunk))) for i, chunk in enumerate(chunks))
        else:
            answers = self.executor.map_payloads(partial(_teacher_hook, self, hook), [inputs(c) for c in chunks])
        for i, raw in answers:
            chunk = chunks[i]
            values = [float(v) for v in raw]
            if len(values) != len(chunk) or not all(math.isfinite(v) for v in values):
                raise RuntimeError(f"{type(self).__name__} returned {len(values)} values (or NaN) for {len(chunk)}")
            rows = to_rows(chunk, values)
            if store is not None:
                store.add(rows)
            results.update(zip(chunk, values, strict=True))
            bar.update(len(chunk))
        bar.close()
        self.last_rate = len(todo) / max(time.perf_counter() - start, 1e-9)

    def _score_pairs(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Pointwise hook: one score per (query text, passage text)."""
        raise NotImplementedError(f"{type(self).__name__} has no pointwise mode")

    def _prefer(self, triples: list[tuple[str, str, str]]) -> list[float]:
        """Pairwise hook: P(passage A more relevant than passage B) per (query, A, B)."""
        raise NotImplementedError(f"{type(self).__name__} has no pairwise mode")

    def _rank_window(self, query: str, passages: list[str]) -> list[int]:
        """Listwise hook: a permutation of ``range(len(passages))``, most relevant first."""
        raise NotImplementedError(f"{type(self).__name__} has no listwise mode")


def _teacher_hook(teacher: Teacher, hook: str) -> Callable[[Any], Any]:
    """In a worker: the teacher's (unpickled copy's) hook, its model loaded once."""
    teacher.executor = None
    teacher.load()
    return getattr(teacher, hook)


def check_inputs(queries: Mapping[str, Query], candidates: Candidates, corpus: Mapping[str, Document]) -> None:
    """A DataError when a candidate query has no text, a candidate is not in the corpus, or one is listed twice."""
    missing_q = [q for q in candidates if q not in queries]
    if missing_q:
        raise DataError(f"{len(missing_q)} candidate queries have no text (e.g. {missing_q[0]!r}); check --queries")
    missing = sorted({d for ids in candidates.values() for d in ids if d not in corpus})
    if missing:
        raise DataError(
            f"{len(missing)} candidate documents are not in the corpus (e.g. {missing[0]!r}); "
            "do the candidates belong to this dataset?"
        )
    for q, ids in candidates.items():
        if len(set(ids)) != len(ids):
            raise DataError(f"query {q!r} lists a candidate twice")
