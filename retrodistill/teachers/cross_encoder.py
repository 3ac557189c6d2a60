"""A cross-encoder teacher (sentence-transformers ``CrossEncoder``), pointwise, length-bucketed."""

from __future__ import annotations

from functools import cached_property

from retrodistill.errors import require
from retrodistill.precision import PRECISIONS, check_precision, resolve_precision
from retrodistill.revision import model_revision
from retrodistill.teachers.base import Teacher
from retrodistill.teachers.records import TeacherSpec

DTYPES = PRECISIONS


class CrossEncoderTeacher(Teacher):
    """Scores (query, passage) pairs with any ``CrossEncoder`` (hub id or local folder).

    Scores are the model's raw logits (no sigmoid), higher = more relevant. Pairs are sorted by
    length, batched, scored, and put back in their order, so a batch pads to similar lengths.
    ``chunk_size`` pairs are scored and stored per transaction (it does not change scores).
    ``batch_size`` defaults to 32 on a GPU and 4 on CPU: on CPU a padded batch takes the masked
    attention path, and batches of 1-4 length-sorted pairs score 1.3-1.4x faster than batches of 32
    (SciFact, 512 tokens, measured in ``eval/results/teachers/README.md``).
    ``dtype="bfloat16"`` runs the forward pass under bfloat16 autocast: on CPUs with AVX512-BF16 or
    AMX (and on GPUs) it is 2-3x faster, with logits within ~0.1 of float32 (Spearman 0.9999 in
    ``eval/bench_teach.py``); on AVX2-only CPUs it is emulated and ~6x slower. ``dtype="auto"`` (the
    default) picks bfloat16 only where the hardware has it (``retrodistill.precision``). The resolved
    dtype is part of the teacher's identity, so bfloat16 scores are stored apart from float32 ones
    (a float32 spec leaves ``dtype`` out, as before ``auto`` existed, so older float32 stores match).
    """

    granularity = "pointwise"

    def __init__(
        self,
        model: str,
        batch_size: int | None = None,
        max_length: int | None = None,
        device: str | None = None,
        chunk_size: int = 512,
        dtype: str = "auto",
    ) -> None:
        super().__init__()
        self.requested_dtype = check_precision(dtype, "cross-encoder dtype")
        self.chunk_size = int(chunk_size)
        self.model_id = model
        self.batch_size = int(batch_size) if batch_size else None
        self.max_length = max_length
        self.device = device

    @cached_property
    def dtype(self) -> str:
        """The resolved dtype, ``float32`` or ``bfloat16``, for the device the model runs on."""
        return resolve_precision(self.requested_dtype, self._device_type())

    def _device_type(self) -> str:
        if self.device:
            return str(self.device).split(":")[0]
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @cached_property
    def spec(self) -> TeacherSpec:
        options: dict[str, object] = {"max_length": self.max_length}
        if self.dtype != "float32":
            options["dtype"] = self.dtype
        return TeacherSpec(
            "cross-encoder", self.model_id, model_revision(self.model_id), "pointwise", "logit", "", options
        )

    @cached_property
    def model(self):
        CrossEncoder = require("sentence_transformers", purpose="cross-encoder teachers").CrossEncoder
        kwargs = {"device": self.device} if self.device else {}
        if self.max_length:
            kwargs["max_length"] = int(self.max_length)
        model = CrossEncoder(self.model_id, num_labels=1, **kwargs)
        model.eval()
        return model

    def load(self) -> None:
        self.model  # noqa: B018

    def _score_pairs(self, pairs: list[tuple[str, str]]) -> list[float]:
        torch = require("torch", purpose="cross-encoder teachers")

        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        autocast = torch.autocast(self.model.device.type, dtype=torch.bfloat16, enabled=self.dtype == "bfloat16")
        with torch.inference_mode(), autocast:
            logits = self.model.predict(
                [pairs[i] for i in order],
                batch_size=self.batch_size or (4 if self.model.device.type == "cpu" else 32),
                activation_fn=torch.nn.Identity(),
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        scores = [0.0] * len(pairs)
        for position, i in enumerate(order):
            scores[i] = float(logits[position])
        return scores
