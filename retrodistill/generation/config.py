"""``GenerateConfig``: how pseudo-queries are written for a corpus with no judged queries (the ``generate``
block of a ``distill`` config). Defaults are sized for a CPU and hold no per-corpus constant."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from retrodistill.generation.generator import DEFAULT_MODEL, QueryGenerator
from retrodistill.specs import checked


class GenerateConfig(BaseModel):
    """Passages sampled (``passages``, all when None) x ``per_passage`` queries, written by ``model``.

    ``round_trip`` names a first stage (e.g. ``bm25s``) that searches the whole corpus with each query;
    the query is kept only when its source passage ranks in the top ``round_trip_k`` (Promptagator's
    consistency filter). ``meta_filter`` drops queries about the passage rather than its subject and
    answers that echo the instruction (``retrodistill.generation.filter.is_meta_query``), before the
    round trip. Which passage is a query's positive is the student's choice (``positives``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    gguf_file: str | None = None
    template: str = "gpl"
    passages: int | None = Field(500, ge=1)
    per_passage: int = Field(1, ge=1)
    seed: int = 0
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(32, ge=1)
    temperature: float = Field(0.8, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_passage_tokens: int = Field(200, ge=8)
    meta_filter: bool = False
    round_trip: str | None = None
    round_trip_k: int = Field(20, ge=1)

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        from retrodistill.generation.templates import resolve_templates

        checked(resolve_templates, value)
        return value

    @field_validator("round_trip")
    @classmethod
    def _round_trip_source(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from retrodistill.retrieval.first_stage import check_source

        return checked(check_source, value)

    def generator(self) -> QueryGenerator:
        """The generator this config describes (the model loads on first use)."""
        return QueryGenerator(
            self.model,
            self.gguf_file,
            self.template,
            self.seed,
            self.batch_size,
            self.max_new_tokens,
            self.temperature,
            self.top_p,
            self.max_passage_tokens,
        )
