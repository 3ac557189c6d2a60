"""Length buckets: which texts share a forward pass, and the padded length each forward runs at.

A forward costs about (rows x padded length) on a CPU, so one long text in a batch of short ones makes
every row pay for its length. Texts are sorted by token count, cut into groups of similar length, and
each group is padded to a bucket length (a multiple of 8 up to 64, then of 32), not to its own longest
text. The second rule bounds the distinct (rows, length) shapes a long-running server meets to
``max_batch x buckets``, so the kernels and allocator caches that grow per shape stop growing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SHORT = 64
"""Up to this many tokens buckets are 8 apart; beyond it, 32."""


def bucket_length(tokens: int, limit: int | None = None) -> int:
    """``tokens`` rounded up to its bucket, never above ``limit`` (the model's maximum), never below ``tokens``."""
    step = 8 if tokens <= SHORT else 32
    padded = -(-max(int(tokens), 1) // step) * step
    return max(int(tokens), min(padded, limit)) if limit else padded


def length_batches(
    lengths: Sequence[int], max_batch: int, limit: int | None = None, shrink: float = 2 / 3
) -> list[tuple[list[int], int]]:
    """Groups of indices into ``lengths`` with the padded length of each group, longest first.

    A group holds at most ``max_batch`` texts; a new one starts when a text's bucket is ``shrink`` times
    the group's or less, so a group's padding costs at most about 1 / shrink of its real tokens.
    """
    if max_batch < 1:
        raise ValueError("max_batch must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: -int(lengths[i]))
    groups: list[tuple[list[int], int]] = []
    members: list[int] = []
    padded = 0
    for i in order:
        own = bucket_length(int(lengths[i]), limit)
        if members and (len(members) >= max_batch or own <= shrink * padded):
            groups.append((members, padded))
            members = []
        if not members:
            padded = own
        members.append(i)
    if members:
        groups.append((members, padded))
    return groups


def take_rows(
    features: dict[str, Any], rows: Sequence[int], length: int, pad_id: int, device: Any = None
) -> dict[str, Any]:
    """Tokenizer ``features`` (torch tensors, first axis = texts) for ``rows`` only, their token axis cut or
    padded to ``length`` (``pad_id`` for ``input_ids``, 0 elsewhere); other entries pass through."""
    import torch

    index = torch.as_tensor(list(rows), dtype=torch.long)
    out: dict[str, Any] = {}
    for name, value in features.items():
        if not isinstance(value, torch.Tensor):
            out[name] = value
            continue
        value = value[index]
        if value.dim() == 2:
            width = value.shape[1]
            if width >= length:
                value = value[:, :length]
            else:
                fill = pad_id if name == "input_ids" else 0
                value = torch.nn.functional.pad(value, (0, length - width), value=fill)
        out[name] = value if device is None else value.to(device)
    return out
