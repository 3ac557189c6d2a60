"""Pointwise score distillation."""

from __future__ import annotations

import torch


def pointwise_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error between student and teacher scores.

    Inputs: ``student`` and ``teacher`` (B, G) scores of the same (query, passage) pairs; ``mask``
    (B, G) bool marks real entries (False = padding). Teacher scores must be on the scale the student
    can reach (normalise them first, e.g. z-score per query, if they are raw logits).
    Follows the pointwise regression baseline of knowledge distillation for ranking
    (Hofstaetter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture
    Knowledge Distillation", 2020, Sec. 3).
    """
    diff = (student - teacher) ** 2
    if mask is None:
        return diff.mean()
    return (diff * mask).sum() / mask.sum().clamp(min=1)
