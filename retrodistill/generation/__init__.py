"""Pseudo-queries written by a causal LM from corpus passages (doc2query / InPars / GPL style)."""

from __future__ import annotations
