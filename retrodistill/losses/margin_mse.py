"""MarginMSE."""

from __future__ import annotations

import torch


def margin_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE between student and teacher margins of the positive over each other candidate.

    Inputs: (B, G) scores with the positive in column 0 and candidates in columns 1..G-1; ``mask``
    (B, G) bool marks real entries. Loss = mean over (b, j>=1) of
    ((s[b,0] - s[b,j]) - (t[b,0] - t[b,j]))^2. With G = 2 this is exactly MarginMSE of
    Hofstaetter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture
    Knowledge Distillation" (2020); G > 2 averages it over several negatives.
    """
    s_margin = student[:, :1] - student[:, 1:]
    t_margin = teacher[:, :1] - teacher[:, 1:]
    diff = (s_margin - t_margin) ** 2
    if mask is None:
        return diff.mean()
    m = mask[:, 1:] & mask[:, :1]
    return (diff * m).sum() / m.sum().clamp(min=1)
