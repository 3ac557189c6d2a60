"""The evaluation job's configuration (from CLI flags or a JSON/YAML file)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from retrodistill.eval.measures import DEFAULT_MEASURES


class EvalConfig(BaseModel):
    """What to evaluate and where to write it. Unknown keys are rejected.

    Either ``dataset`` (an ir_datasets id or a BEIR folder) or ``qrels`` + ``candidates``
    (a re-ranking task such as TREC DL top-100 lists) must be given. With ``candidates``,
    each system re-ranks the candidate lists; the candidates themselves form the first row.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    split: str = "test"
    qrels: str | None = None
    queries: str | None = None
    candidates: str | None = Field(None, description="rank_llm JSON, a TREC run, or a retriever spec such as bm25s")
    systems: list[str] = Field(default_factory=list)
    measures: list[str] = Field(default_factory=lambda: list(DEFAULT_MEASURES))
    k: int = Field(1000, ge=1, description="documents retrieved per query")
    depth: int | None = Field(None, ge=1, description="re-rank only the top `depth` candidates")
    baseline: str | None = None
    significance: Literal["t-test", "randomization"] = "t-test"
    alpha: float = Field(0.05, gt=0, lt=1)
    output: str | None = None
    cache_dir: str | None = None
    plot: bool = True

    @model_validator(mode="after")
    def _needs_data(self) -> EvalConfig:
        if self.dataset is None and (self.qrels is None or self.candidates is None):
            raise ValueError("give a dataset, or qrels together with candidates")
        if not self.systems and self.candidates is None:
            raise ValueError("give at least one system to evaluate")
        return self
