"""Cheap finiteness check of gradients for the trainer's NaN/Inf guard."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def non_finite_gradients(named_params: Iterable[tuple[str, Tensor]]) -> list[str]:
    """Names of the parameters whose gradient holds a NaN or an Inf (``[]`` when all are
    finite or absent).

    When all is well this costs one sum per gradient and one host sync: a NaN or Inf in
    any gradient makes the sum of the per-tensor sums non-finite. Only then (or when that
    sum overflows, which finite float32 gradients of a sane run never do) are the tensors
    checked one by one, to name the culprits exactly.
    """
    named = [(n, p.grad) for n, p in named_params if p.grad is not None]
    if not named:
        return []
    sums = [g.sum(dtype=torch.float64 if g.dtype == torch.float64 else torch.float32)
            for _, g in named if g.numel()]
    if not sums or bool(torch.isfinite(torch.stack(sums).sum())):
        return []
    finite = torch.stack([torch.isfinite(g).all() for _, g in named])
    return [name for (name, _), ok in zip(named, finite.tolist()) if not ok]
