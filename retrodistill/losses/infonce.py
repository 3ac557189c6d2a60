"""In-batch-negative InfoNCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def infonce(scores: torch.Tensor, targets: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Cross-entropy of each query's positive against every passage in the batch.

    Inputs: ``scores`` (B, N): query b against all N passages of the batch (its own group and the
    other queries' groups, which act as in-batch negatives); ``targets`` (B,) long: the column of
    each query's positive. Loss = mean_b -log softmax(scores[b] / T)[targets[b]].
    InfoNCE: van den Oord et al., "Representation Learning with Contrastive Predictive Coding" (2018);
    in-batch negatives for dense retrieval: Karpukhin et al., DPR (EMNLP 2020). sentence-transformers'
    MultipleNegativesRankingLoss is this with T = 1/20.
    """
    return F.cross_entropy(scores / temperature, targets)
