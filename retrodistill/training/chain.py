"""The progressive teacher chain's first link: an expensive teacher (an LLM) scores the candidates of a
few training queries; a cross-encoder learns those scores (``teacher train`` with ``loss: distill``) and
then, cheaply, scores every candidate as a member of the teachers the student learns from.

This trades the expensive teacher's cost per pair for a one-off training run, the shape of Instruction
Distillation and of InPars' reranker step; ``distill`` measures both links (time, pairs, and the table's
rows).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from retrodistill.data.records import Dataset
from retrodistill.specs import checked

log = logging.getLogger("retrodistill.distill")

FORBIDDEN = {"dataset", "split", "output", "loss", "teacher_store"}


class ChainConfig(BaseModel):
    """``teacher`` scores the candidates of the first ``queries`` training queries; ``cross_encoder`` holds
    ``teacher train`` keys (base_model, max_length, epochs, ...) for the cross-encoder trained on them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher: str = Field(..., description="the expensive teacher, e.g. llm:MODEL,gguf_file=F")
    queries: int = Field(100, ge=1, description="training queries it scores")
    cross_encoder: dict[str, Any] = Field(default_factory=dict)

    @field_validator("teacher")
    @classmethod
    def _teacher_spec(cls, value: str) -> str:
        from retrodistill.teachers import bind_teacher

        return checked(bind_teacher, value)

    @field_validator("cross_encoder")
    @classmethod
    def _trainer_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        set_here = sorted(FORBIDDEN & set(value))
        if set_here:
            raise ValueError(f"cross_encoder.{set_here[0]} is set by the chain; remove it")
        return value

    def trainer(self, dataset: str, split: str, work: Path):
        """The cross-encoder's ``TrainConfig`` (a ConfigError naming the key when one is wrong)."""
        from pydantic import ValidationError

        from retrodistill.errors import ConfigError
        from retrodistill.training.teacher import TrainConfig

        try:
            return TrainConfig(
                **{"eval_split": None, **self.cross_encoder},
                dataset=dataset,
                split=split,
                output=str(work / "chain" / "cross-encoder"),
                loss="distill",
                teacher_store=str(work / "chain" / "teacher_scores.sqlite"),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"invalid configuration: chain.cross_encoder.{where}: {first['msg']}") from None

    def student_teacher(self, work: Path) -> str:
        """The spec of the trained cross-encoder, as the chain's member of the teachers."""
        from retrodistill.training.teacher import TrainConfig

        length = self.cross_encoder.get("max_length", TrainConfig.model_fields["max_length"].default)
        return f"cross-encoder:{work / 'chain' / 'cross-encoder' / 'model'},max_length={length}"


@dataclass(frozen=True)
class ChainLink:
    """What the first link cost: pairs the expensive teacher scored and the seconds of both steps."""

    queries: int
    pairs: int
    scored_now: int
    score_seconds: float
    train_seconds: float
    trained_now: bool


def run_chain(
    chain: ChainConfig,
    data: Dataset,
    dataset: str,
    split: str,
    candidates: Mapping[str, Sequence[str]],
    work: Path,
    show_progress: bool = True,
) -> ChainLink:
    """Score the first ``chain.queries`` queries' candidates with the expensive teacher, then train (or
    re-use) the cross-encoder on those scores."""
    from retrodistill.teachers import build_teacher
    from retrodistill.training.teach import teach
    from retrodistill.training.teacher import train

    subset = dict(list(candidates.items())[: chain.queries])
    trainer = chain.trainer(dataset, split, work)
    started = time.perf_counter()
    taught = teach(build_teacher(chain.teacher), data, subset, trainer.teacher_store, show_progress)
    score_seconds = time.perf_counter() - started
    model = Path(trainer.output) / "model"
    started, trained_now = time.perf_counter(), not model.is_dir()
    if trained_now:
        train(trainer, show_progress)
    else:
        log.info("chain cross-encoder already trained in %s; delete it to train again", model)
    return ChainLink(
        len(subset), taught.pairs, taught.scored_now, score_seconds, time.perf_counter() - started, trained_now
    )
