"""Distillation losses over score tensors. Names in LOSSES are what training configs accept."""

from __future__ import annotations

from retrodistill.registry import Registry

LOSSES = Registry("loss")
LOSSES.register("mse", "retrodistill.losses.pointwise:pointwise_mse", "student vs teacher score MSE")
LOSSES.register("margin-mse", "retrodistill.losses.margin_mse:margin_mse", "MarginMSE (Hofstaetter et al. 2020)")
LOSSES.register("ranknet", "retrodistill.losses.ranknet:ranknet", "pairwise RankNet on teacher preferences")
LOSSES.register("kl", "retrodistill.losses.listwise_kl:listwise_kl", "listwise KL with temperature")
LOSSES.register("infonce", "retrodistill.losses.infonce:infonce", "in-batch-negative InfoNCE")
