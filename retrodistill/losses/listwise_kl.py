"""Listwise KL distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def listwise_kl(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 1.0
) -> torch.Tensor:
    """KL(teacher || student) between softmax distributions over each group, times T^2.

    Inputs: (B, G) scores; ``mask`` (B, G) bool (padding gets -inf before the softmax). The teacher
    distribution is softmax(t / T), the student's log-softmax(s / T); the loss is the batch mean of
    sum_j p_t log(p_t / p_s), scaled by T^2 (Hinton et al., 2015) so gradients keep their size.
    As in RocketQAv2 (Ren et al., EMNLP 2021) and the DistillKL objective of Lin et al.
    ("In-Batch Negatives for Knowledge Distillation with Tightly-Coupled Teachers", 2021).
    """
    if mask is not None:
        student = student.masked_fill(~mask, float("-inf"))
        teacher = teacher.masked_fill(~mask, float("-inf"))
    log_p_s = F.log_softmax(student / temperature, dim=1)
    log_p_t = F.log_softmax(teacher / temperature, dim=1)
    p_t = log_p_t.exp()
    terms = torch.where(p_t > 0, p_t * (log_p_t - log_p_s), torch.zeros_like(p_t))
    return terms.sum(dim=1).mean() * temperature**2
