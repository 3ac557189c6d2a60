"""Pairwise RankNet distillation on teacher preferences."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ranknet(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 1.0
) -> torch.Tensor:
    """Binary cross-entropy of the student's pairwise preference against the teacher's.

    Inputs: (B, G) scores; ``teacher`` may hold scores (preference = sigmoid((t_i - t_j) / T)) of
    any granularity, including -rank from a listwise teacher or summed win probabilities from a
    pairwise one. For every ordered pair i != j of real entries in a group, the student's
    P(i > j) = sigmoid(s_i - s_j) is fit to the teacher's by BCE, averaged over pairs.
    RankNet: Burges et al., "Learning to Rank using Gradient Descent" (ICML 2005); used for
    distilling pairwise teacher preferences in PairDistill (Huang et al., EMNLP 2024).
    """
    s_diff = student.unsqueeze(2) - student.unsqueeze(1)
    target = torch.sigmoid((teacher.unsqueeze(2) - teacher.unsqueeze(1)) / temperature)
    pair_mask = ~torch.eye(student.shape[1], dtype=torch.bool, device=student.device).unsqueeze(0)
    if mask is not None:
        pair_mask = pair_mask & mask.unsqueeze(2) & mask.unsqueeze(1)
    losses = F.binary_cross_entropy_with_logits(s_diff, target, reduction="none")
    pair_mask = pair_mask.expand_as(losses)
    return (losses * pair_mask).sum() / pair_mask.sum().clamp(min=1)
