"""The evaluation job's configuration (from CLI flags or a JSON/YAML file)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_serializer, field_validator, model_validator

from retrodistill.eval.measures import DEFAULT_MEASURES
from retrodistill.specs import SystemSpec, checked, parse_spec


class EvalConfig(BaseModel):
    """What to evaluate and where to write it. Unknown keys are rejected.

    Either ``dataset`` (an ir_datasets id or a BEIR folder) or ``qrels`` + ``candidates``
    (a re-ranking task such as TREC DL top-100 lists) must be given. With ``candidates``,
    each system re-ranks the candidate lists; the candidates themselves form the first row. A retriever
    spec in ``candidates`` retrieves ``k`` documents per query; a re-ranker re-scores the top ``depth`` of
    each list and the candidates below keep their first-stage order beneath them, so every row ranks
    the same documents and a measure at any cutoff up to ``k`` means what it says.
    ``systems`` holds spec strings as typed, or ``SystemSpec`` records (what stages that build
    specs from paths pass). Every system and a retriever spec in ``candidates`` are checked here,
    before any data or model loads.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    split: str = "test"
    qrels: str | None = None
    queries: str | None = None
    candidates: str | None = Field(None, description="rank_llm JSON, a TREC run, or a retriever spec such as bm25s")
    systems: list[str | SystemSpec] = Field(default_factory=list)
    measures: list[str] = Field(default_factory=lambda: list(DEFAULT_MEASURES))
    k: int = Field(1000, ge=1, description="documents retrieved per query (by a retriever spec in candidates too)")
    depth: int | None = Field(
        100, ge=1, description="candidates each re-ranker re-scores per query (None: all); the rest keep their order"
    )
    baseline: str | None = None
    significance: Literal["t-test", "randomization"] = "t-test"
    alpha: float = Field(0.05, gt=0, lt=1)
    output: str | None = None
    cache_dir: str | None = None
    plot: bool = True

    @field_validator("candidates")
    @classmethod
    def _candidates_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or info.data.get("dataset") is None:
            return value  # a rank_llm JSON, read (and checked) with the qrels
        from retrodistill.retrieval.first_stage import check_source

        return checked(check_source, value)

    @field_validator("systems")
    @classmethod
    def _systems_bind(cls, value: list[str | SystemSpec], info: ValidationInfo) -> list[str | SystemSpec]:
        from retrodistill.eval.systems import bind_system

        if "candidates" not in info.data:
            return value  # the candidates failed; that is the error to report
        rerank_mode = info.data["candidates"] is not None
        for system in value:
            checked(lambda s: bind_system(parse_spec(s) if isinstance(s, str) else s, rerank_mode), system)
        return value

    @field_serializer("systems")
    def _systems_text(self, value: list[str | SystemSpec]) -> list[str]:
        return [s if isinstance(s, str) else s.text for s in value]

    @model_validator(mode="after")
    def _needs_data(self) -> EvalConfig:
        if self.dataset is None and (self.qrels is None or self.candidates is None):
            raise ValueError("give a dataset, or qrels together with candidates")
        if not self.systems and self.candidates is None:
            raise ValueError("give at least one system to evaluate")
        return self
