"""Losses on hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from retrodistill.errors import ConfigError
from retrodistill.losses import LOSSES

S = torch.tensor([[2.0, 1.0, 0.0], [0.5, 1.5, -1.0]])
T = torch.tensor([[3.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


def test_pointwise_mse():
    expected = ((2 - 3) ** 2 + 0 + 1 + 0.25 + 2.25 + 1) / 6
    assert LOSSES.get("mse")(S, T).item() == pytest.approx(expected)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert LOSSES.get("mse")(S, T, mask).item() == pytest.approx((1 + 0 + 0.25) / 3)


def test_margin_mse():
    # row 0: s margins 1, 2; t margins 2, 2 -> (1-2)^2, 0. row 1: s margins -1, 1.5; t margins 1, 1 -> 4, 0.25
    assert LOSSES.get("margin-mse")(S, T).item() == pytest.approx((1 + 0 + 4 + 0.25) / 4)


def _sig(x):
    return 1 / (1 + math.exp(-x))


def _bce(logit, target):
    p = _sig(logit)
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_ranknet():
    total, count = 0.0, 0
    for b in range(2):
        for i in range(3):
            for j in range(3):
                if i != j:
                    total += _bce((S[b, i] - S[b, j]).item(), _sig((T[b, i] - T[b, j]).item() / 0.5))
                    count += 1
    assert LOSSES.get("ranknet")(S, T, temperature=0.5).item() == pytest.approx(total / count, rel=1e-6)


def test_listwise_kl():
    total = 0.0
    for b in range(2):
        t = [math.exp(v / 2) for v in T[b].tolist()]
        s = [math.exp(v / 2) for v in S[b].tolist()]
        pt = [v / sum(t) for v in t]
        ps = [v / sum(s) for v in s]
        total += sum(p * math.log(p / q) for p, q in zip(pt, ps, strict=True))
    assert LOSSES.get("kl")(S, T, temperature=2.0).item() == pytest.approx(total / 2 * 4, rel=1e-6)
    assert LOSSES.get("kl")(T, T).item() == pytest.approx(0.0, abs=1e-7)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    # a masked column must not matter: change it and the loss stays
    s2 = S.clone()
    s2[0, 2] = 99.0
    assert LOSSES.get("kl")(S, T, mask).item() == pytest.approx(LOSSES.get("kl")(s2, T, mask).item())


def test_infonce():
    scores = torch.tensor([[0.9, 0.1, 0.3, 0.0], [0.2, 0.1, 0.8, 0.4]])
    targets = torch.tensor([0, 2])
    expected = 0.0
    for row, t in zip(scores.tolist(), targets.tolist(), strict=True):
        z = [math.exp(v / 0.5) for v in row]
        expected += -math.log(z[t] / sum(z))
    assert LOSSES.get("infonce")(scores, targets, temperature=0.5).item() == pytest.approx(expected / 2, rel=1e-5)


def test_gradients_point_the_right_way():
    s = S.clone().requires_grad_(True)
    LOSSES.get("margin-mse")(s, T).backward()
    assert s.grad[0, 0] < 0  # descent raises the positive's score in row 0


def test_unknown_loss():
    with pytest.raises(ConfigError, match="unknown loss 'listnet'; choose one of: mse, margin-mse, ranknet, kl"):
        LOSSES.get("listnet")
