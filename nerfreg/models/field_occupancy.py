"""Occupancy grid for empty-space skipping, maintained during training as instant-ngp does.

Every ``update_every`` steps a random subset of cells (after warm-up, also the occupied
ones) is re-measured: the field's density at a jittered point of each cell, as the opacity
``sigma * dt`` of one marching step, replaces the stored value when larger than the decayed
old one (``old * decay``). A cell is occupied while its value exceeds ``min(mean, threshold)``.
State lives in buffers (checkpointed); randomness comes from torch's global generator, which
the trainer checkpoints, so a resumed run updates the grid exactly as an uninterrupted one.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from nerfreg.ops.ray_march import GridSpec, unnormalise_points


class OccupancyGrid(nn.Module):
    """``res^3`` cells over the normalised unit cube; ``binary`` is what the marcher reads."""

    def __init__(self, resolution: int = 128, update_every: int = 16, warmup_steps: int = 256,
                 decay: float = 0.95, threshold: float = 0.01, sample_fraction: float = 0.25,
                 chunk: int = 262_144) -> None:
        super().__init__()
        if resolution < 1 or update_every < 1 or not 0 < sample_fraction <= 1:
            raise ValueError(f'occupancy grid: bad resolution={resolution}, update_every='
                             f'{update_every} or sample_fraction={sample_fraction}')
        self.res = int(resolution)
        self.update_every = int(update_every)
        self.warmup_steps = int(warmup_steps)
        self.decay = float(decay)
        self.threshold = float(threshold)
        self.sample_fraction = float(sample_fraction)
        self.chunk = int(chunk)
        n = self.res ** 3
        self.register_buffer('values', torch.zeros(n))
        self.register_buffer('binary', torch.ones(n, dtype=torch.bool))

    @property
    def n_cells(self) -> int:
        return self.res ** 3

    def occupied_fraction(self) -> float:
        return float(self.binary.float().mean())

    @torch.no_grad()
    def update(self, step: int, spec: GridSpec, density_fn: Callable[[Tensor], Tensor],
               step_size: float) -> bool:
        """Re-measure cells if ``step`` is an update step; True if it was."""
        if step % self.update_every:
            return False
        device = self.values.device
        n = self.n_cells
        k = max(1, int(n * self.sample_fraction))
        if step < self.warmup_steps:
            cells = torch.randint(0, n, (k,), device=device)
        else:
            occ = torch.nonzero(self.binary).squeeze(1)
            if len(occ) > k:
                occ = occ[torch.randint(0, len(occ), (k,), device=device)]
            cells = torch.cat([torch.randint(0, n, (k,), device=device), occ])
        ijk = torch.stack([cells // (self.res * self.res), (cells // self.res) % self.res,
                           cells % self.res], 1)
        u = (ijk + torch.rand(len(cells), 3, device=device)) / self.res
        x = unnormalise_points(u, spec)
        new = torch.cat([density_fn(x[i:i + self.chunk]).float()
                         for i in range(0, len(x), self.chunk)]) * step_size
        # a cell drawn twice keeps the larger measurement
        self.values.scatter_reduce_(0, cells, torch.maximum(self.values[cells] * self.decay,
                                                            new), 'amax', include_self=False)
        thresh = min(float(self.values.mean()), self.threshold)
        self.binary.copy_(self.values > thresh)
        return True
