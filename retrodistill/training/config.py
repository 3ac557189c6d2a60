"""The student training configuration (``retrodistill train CONFIG``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retrodistill.precision import Precision, bf16_alias
from retrodistill.specs import checked


class StudentConfig(BaseModel):
    """What to train, from which teacher scores, and how. Unknown keys are rejected.

    ``store`` names a teacher score store (``retrodistill teach``); without it the student is
    fine-tuned on the train qrels alone with in-batch InfoNCE over BM25 hard negatives (the
    supervised baseline). ``loss`` mixes LOSSES by weight, e.g. ``{"kl": 1.0, "infonce": 0.1}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    student: Literal["bi-encoder", "colbert"] = "bi-encoder"
    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    dataset: str = Field(..., description="training data: ir_datasets id or BEIR folder")
    split: str = "train"
    store: str | None = None
    eval_dataset: str | None = None
    eval_split: str = "test"
    eval_candidates: str = "bm25s"
    eval_queries: int | None = Field(100, ge=1, description="queries re-ranked by the in-training evaluator")
    eval_steps: int | None = Field(None, ge=1)
    group_size: int = Field(8, ge=2)
    negatives: Literal["top", "spread", "random"] = "spread"
    positives: Literal["judged", "teacher-top"] = Field(
        "judged",
        description="a group's positive: a judged passage (for generated queries, the source passage), or the "
        "teacher's top candidate, with negatives from below its top 2 (no labels used)",
    )
    hard_negative_depth: int = Field(30, ge=1, description="BM25 depth for the supervised baseline's negatives")
    loss: dict[str, float] = Field(default_factory=lambda: {"kl": 1.0})
    temperature: float = Field(1.0, gt=0)
    student_scale: float = Field(20.0, gt=0, description="cosine x scale = the student's score")
    colbert_dim: int = Field(128, ge=8, description="ColBERT student: token vector size after the projection")
    colbert_init: Literal["random", "identity"] = Field(
        "random",
        description="ColBERT student's projection: random (nn.Linear's init from seed), or identity, which starts "
        "from the backbone's own token vectors (colbert_dim = its hidden size, 384 for MiniLM)",
    )
    teacher_norm: Literal["none", "zscore"] = "none"
    teacher_interpolate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="train on W * z(teacher) + (1 - W) * z(bm25s) over each query's stored candidates "
        "(Birch-style, as `eval ... interpolate=W`; pick W on a dev split)",
    )
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_seq_length: int = Field(256, ge=8, description="token cap while training")
    inference_max_seq_length: int | None = Field(
        None, ge=8, description="token cap saved with the bi-encoder for encoding (default: max_seq_length)"
    )
    save_steps: int = Field(100, ge=1)
    activation_checkpointing: bool = Field(
        False,
        description="keep only each layer's input for the backward pass and recompute the rest: the training "
        "step's activations, most of its memory, shrink several-fold (peak RSS 0.46x measured on CPU) for ~10% "
        "more time per step; the weights come out the same, so a run resumes with it switched",
    )
    precision: Precision = Field(
        "auto",
        description="bfloat16 autocast in training, or float32: bfloat16 is 2-3x faster on CPUs with "
        "AVX512-BF16/AMX and on GPUs, ~6x slower on AVX2-only CPUs; auto picks by detection and a measured probe. "
        "`bf16: true/false` is read as bfloat16/float32",
    )
    seed: int = 42
    output: str = Field(..., description="output folder: model/, checkpoints/, logs, metrics")

    @field_validator("model")
    @classmethod
    def _model_named(cls, value: str) -> str:
        return checked(check_model, value)

    @field_validator("eval_candidates")
    @classmethod
    def _eval_candidates_source(cls, value: str) -> str:
        from retrodistill.retrieval.first_stage import check_source

        return checked(check_source, value)

    @model_validator(mode="before")
    @classmethod
    def _bf16_alias(cls, data: object) -> object:
        return bf16_alias(data)

    @model_validator(mode="after")
    def _colbert_keys_for_colbert(self) -> StudentConfig:
        given = sorted({"colbert_dim", "colbert_init"} & self.model_fields_set)
        if given and self.student != "colbert":
            raise ValueError(f"{' and '.join(given)} apply to student colbert only, not {self.student}")
        return self

    @field_validator("loss")
    @classmethod
    def _known_losses(cls, value: dict[str, float]) -> dict[str, float]:
        from retrodistill.losses import LOSSES

        if not value:
            raise ValueError("give at least one loss, e.g. {'kl': 1.0}")
        for name, weight in value.items():
            if name not in LOSSES:
                raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES.names())}")
            if weight < 0:
                raise ValueError(f"loss weight of {name!r} must be >= 0")
        return value


def check_model(model: str) -> None:
    """A ConfigError when ``model`` is empty or names a local folder that is not there (hub ids pass)."""
    import os

    from retrodistill.errors import ConfigError

    if not model.strip():
        raise ConfigError("give a model: a hub id such as sentence-transformers/all-MiniLM-L6-v2, or a folder")
    if model.startswith((".", "/", "~")) and not os.path.isdir(os.path.expanduser(model)):
        raise ConfigError(f"model folder {model} not found; check the path or give a hub id")
