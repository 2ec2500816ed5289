"""Adam with torch's fused kernel where it pays, shared by the optimizers.

``fused``: True, False or 'auto' (the fused kernel when every parameter is on the CPU: one
pass per tensor, several times faster than torch's per-tensor loop there). The state
layout is the same either way, so checkpoints move freely between the two.
"""

from __future__ import annotations

from typing import Any

import torch


def build_adam(groups: list[dict[str, Any]], fused: bool | str, owner: str,
               **kwargs: Any) -> tuple[torch.optim.Adam, bool]:
    """``(Adam over groups, whether it is fused)``; ``owner`` names the caller in errors."""
    if fused not in (True, False, 'auto'):
        raise ValueError(f"{owner}: fused must be True, False or 'auto', got {fused!r}")
    if fused == 'auto':
        fused = all(p.device.type == 'cpu' for g in groups for p in g['params'])
    return torch.optim.Adam(groups, fused=bool(fused) or None, **kwargs), bool(fused)


def keep_adam_kernel(optimizer: torch.optim.Adam, fused: bool) -> None:
    """After ``load_state_dict`` (which restores the saved groups' options): the kernel
    stays this run's choice, whatever the checkpoint's run used."""
    for group in optimizer.param_groups:
        group['fused'] = fused or None
        if fused:
            group['foreach'] = None
