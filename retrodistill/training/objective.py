"""The student training objective: a weighted mix of LOSSES over (B, G) score tensors."""

from __future__ import annotations

import torch
from torch import nn

from retrodistill.losses import LOSSES


def mix_losses(
    student: torch.Tensor,
    teacher: torch.Tensor,
    weights: dict[str, float],
    temperature: float = 1.0,
    teacher_norm: str = "none",
    in_batch: torch.Tensor | None = None,
    in_batch_temperature: float = 1.0,
    in_batch_offset: int = 0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the named losses and each one's value.

    ``student`` / ``teacher``: (B, G) scores, column 0 the positive. ``in_batch``: (B, N) student
    scores of every query against every passage of the batch, for ``infonce``: the positive of query b
    at column ``in_batch_offset + b*G`` (N = B*G on one process; with the passages of every data-parallel
    rank gathered, N = world*B*G and the offset is rank*B*G). Teacher scores may be z-normalised per
    query (``teacher_norm="zscore"``).
    """
    teacher = teacher.to(student.dtype)
    if teacher_norm == "zscore":
        teacher = (teacher - teacher.mean(dim=1, keepdim=True)) / teacher.std(dim=1, keepdim=True).clamp(min=1e-6)
    total = student.new_zeros(())
    parts: dict[str, float] = {}
    for name, weight in weights.items():
        if weight <= 0:
            continue
        fn = LOSSES.get(name)
        if name == "infonce":
            if in_batch is None:
                raise ValueError("infonce needs the in-batch score matrix")
            group = student.shape[1]
            targets = torch.arange(student.shape[0], device=student.device) * group + in_batch_offset
            value = fn(in_batch, targets, temperature=in_batch_temperature)
        elif name in ("kl", "ranknet"):
            value = fn(student, teacher, temperature=temperature)
        else:
            value = fn(student, teacher)
        parts[name] = float(value.detach())
        total = total + weight * value
    return total, parts


class ScoreDistillationLoss(nn.Module):
    """sentence-transformers loss module: columns (query, passage_0..passage_{G-1}), labels (B, G).

    Student score = cosine(query, passage) x ``scale``; ``infonce`` treats every passage of the batch
    as a candidate for every query (in-batch negatives), at temperature 1 / ``scale``. Under data-parallel
    training the passages of every rank are gathered (with their gradients, as sentence-transformers'
    ``gather_across_devices`` does), so the negatives are those of the global batch.
    """

    def __init__(
        self,
        model: nn.Module,
        weights: dict[str, float],
        scale: float = 20.0,
        temperature: float = 1.0,
        teacher_norm: str = "none",
    ) -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        self.scale = scale
        self.temperature = temperature
        self.teacher_norm = teacher_norm

    def forward(self, sentence_features: list[dict[str, torch.Tensor]], labels: torch.Tensor) -> torch.Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns
        from sentence_transformers.util.distributed import all_gather_with_grad, get_rank, get_world_size

        embeddings = embed_columns(self.model, sentence_features)
        query = nn.functional.normalize(embeddings[0].float(), dim=-1)
        docs = nn.functional.normalize(torch.stack(embeddings[1:], dim=1).float(), dim=-1)  # (B, G, d)
        batch, group = docs.shape[:2]
        student = torch.einsum("bd,bgd->bg", query, docs) * self.scale
        in_batch, offset = None, 0
        if "infonce" in self.weights:
            flat = docs.reshape(batch * group, -1)
            if get_world_size() > 1:
                flat, offset = all_gather_with_grad(flat), get_rank() * batch * group
            in_batch = query @ flat.T
        total, _ = mix_losses(
            student, labels, self.weights, self.temperature, self.teacher_norm, in_batch, 1.0 / self.scale, offset
        )
        return total
