"""Volume renderer (``RENDERERS``): rays -> occupancy-grid marching -> field -> compositing.

Takes either a ray batch (``rays_o``, ``rays_d``: from ``RayPipeline`` during training) or
whole views (``camera``, ``width``, ``height``: validation, test, videos), which it renders
in chunks of ``chunk_size`` rays so that memory stays bounded. ``rays_o``/``rays_d`` or
``camera`` in the render inputs (the model's camera corrections) replace the batch's.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from nerfreg.ops.ray_march import march_rays, pixel_rays
from nerfreg.ops.volume_rendering import composite
from nerfreg.registry import RENDERERS


def available_memory() -> int | None:
    """Bytes of free RAM (Linux), or None when unknown."""
    try:
        return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):
        return None


@RENDERERS.register_module()
class VolumeRenderer:
    """``renderer(render_inputs, batch) -> {'rgb', 'depth', 'alpha', 'backgrounds', 'meta'}``.

    Ray batches give ``[R,3]`` / ``[R,1]`` tensors; view batches ``[B,H,W,3]`` /
    ``[B,H,W,1]``. ``depth`` is the expected depth along the ray (``sum w t / sum w``),
    ``alpha`` the accumulated opacity; the background fills ``1 - alpha``.

    Args:
        chunk_size: rays per chunk when rendering whole views.
        bytes_per_sample: memory estimate per marched sample (field activations, with
            autograd during training); a batch whose samples would exceed the free memory
            is refused with the size it needs.
        train_sample_budget: most samples per training step (instant-ngp's fixed sample
            batch): when a ray batch marches more, only its leading rays are rendered and
            ``meta['n_rays']`` says how many (the model's loss uses those). This bounds
            the cost of the first steps, when the occupancy grid is still full. With
            ``data.rays_per_step`` set above ``budget / samples per ray``, the number of
            rays trained per step adapts to the grid, as instant-ngp's does: few rays while
            the grid is full, more as it empties. None: off.
        march_chunk: under a sample budget, rays are marched in chunks of this many and
            marching stops once the budget is exceeded (rays that would be dropped are not
            marched). 0: march all at once.
    """

    def __init__(self, chunk_size: int = 16384, bytes_per_sample: int = 3072,
                 train_sample_budget: int | None = 262_144, march_chunk: int = 1024) -> None:
        if chunk_size < 1:
            raise ValueError(f'renderer.chunk_size must be >= 1, got {chunk_size}')
        if march_chunk < 0:
            raise ValueError(f'renderer.march_chunk must be >= 0, got {march_chunk}')
        self.march_chunk = int(march_chunk)
        self.chunk_size = int(chunk_size)
        self.bytes_per_sample = int(bytes_per_sample)
        self.train_sample_budget = train_sample_budget

    # ------------------------------------------------------------------ rays
    def render_rays(self, inputs: dict[str, Any], origins: Tensor, dirs: Tensor,
                    backgrounds: Tensor, key: str = 'data.rays_per_step',
                    budget: int | None = None) -> dict[str, Tensor]:
        """Render ``R`` rays: ``rgb [R,3]``, ``depth [R,1]``, ``alpha [R,1]``, sample count.

        With a sample ``budget`` only the first rays whose samples fit are rendered (the
        outputs then have fewer rows)."""
        t_near, t_far = inputs['ray_range'](origins, dirs)
        jitter = (torch.rand(len(origins), device=origins.device) if inputs.get('jitter')
                  else torch.zeros(len(origins), device=origins.device))
        offsets, t0, t1 = self._march(inputs, origins, dirs, t_near, t_far, jitter, budget)
        if budget is not None and int(offsets[-1]) > budget:
            # keep the leading rays whose samples fit the budget (rays come in random
            # order, so this is an unbiased subset), at least one ray
            keep = max(1, int(torch.searchsorted(offsets, budget, right=True)) - 1)
            origins, dirs, backgrounds = origins[:keep], dirs[:keep], backgrounds[:keep]
            offsets = offsets[:keep + 1]
            t0, t1 = t0[:int(offsets[-1])], t1[:int(offsets[-1])]
        n_samples = int(t0.shape[0])
        self._check_memory(n_samples, len(origins), key)
        counts = offsets[1:] - offsets[:-1]
        ray = torch.repeat_interleave(torch.arange(len(origins), device=origins.device), counts)
        d = dirs[ray]
        x = origins[ray] + (0.5 * (t0 + t1))[:, None] * d
        sigma, rgb = inputs['query'](x, d)
        color, depth_sum, acc = composite(sigma, rgb, t0, t1, offsets, inputs['t_min'],
                                          inputs['backend'])
        color = color + (1.0 - acc)[:, None] * backgrounds
        depth = depth_sum / acc.clamp_min(1e-10)
        return dict(rgb=color, depth=depth[:, None], alpha=acc[:, None], n_samples=n_samples)

    def _march(self, inputs: dict[str, Any], origins: Tensor, dirs: Tensor, t_near: Tensor,
               t_far: Tensor, jitter: Tensor, budget: int | None
               ) -> tuple[Tensor, Tensor, Tensor]:
        """March all rays, or with a sample ``budget`` only leading chunks of
        ``march_chunk`` rays until their samples exceed it (the same samples as marching
        all rays, cut later to the budget: rays past it would be dropped anyway)."""
        n = len(origins)
        chunk = max(1, n if budget is None or not self.march_chunk else self.march_chunk)
        parts, total = [], 0
        for i in range(0, max(n, 1), chunk):
            sl = slice(i, i + chunk)
            off, t0, t1 = march_rays(origins[sl], dirs[sl], t_near[sl], t_far[sl], jitter[sl],
                                     inputs['grid'], inputs['spec'], inputs['max_samples'],
                                     inputs['backend'])
            parts.append((off[1:].to(origins.device) + total, t0.to(origins.device),
                          t1.to(origins.device)))
            total += int(off[-1])
            if budget is not None and total > budget:
                break
        offsets = torch.cat([torch.zeros(1, dtype=torch.long, device=origins.device)]
                            + [p[0] for p in parts])
        return offsets, torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts])

    def _check_memory(self, n_samples: int, n_rays: int, key: str) -> None:
        need = n_samples * self.bytes_per_sample * (1 if torch.is_grad_enabled() else 0.3)
        free = available_memory()
        if free is not None and need > free:
            raise MemoryError(
                f'{n_rays} rays marched {n_samples:,} samples, which need about '
                f'{need / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB is free. Lower '
                f'`{key}` (or model.max_samples / raise model.render_step_size).')

    # ------------------------------------------------------------------ trainer interface
    def __call__(self, render_inputs: dict[str, Any], batch: dict[str, Any],
                 render_mode: str | None = None) -> dict[str, Any]:
        bgs = render_inputs['backgrounds']
        if 'rays_o' in batch:
            budget = self.train_sample_budget if render_inputs.get('jitter') else None
            out = self.render_rays(render_inputs, render_inputs.get('rays_o', batch['rays_o']),
                                   render_inputs.get('rays_d', batch['rays_d']), bgs,
                                   budget=budget)
            n = out.pop('n_samples')
            out['backgrounds'] = bgs[:out['rgb'].shape[0]]
            out['meta'] = dict(n_samples=n, n_rays=int(out['rgb'].shape[0]))
            return out
        cams = render_inputs.get('camera', batch['camera'])
        width, height = int(batch['width']), int(batch['height'])
        views, total = [], 0
        for b in range(len(cams)):
            origins, dirs = pixel_rays(cams[[b]], width, height)
            parts = []
            for i in range(0, len(origins), self.chunk_size):
                o, d = origins[i:i + self.chunk_size], dirs[i:i + self.chunk_size]
                part = self.render_rays(render_inputs, o, d, bgs[b].expand(len(o), 3),
                                        key='renderer.chunk_size')
                total += part.pop('n_samples')
                parts.append(part)
            views.append({k: torch.cat([p[k] for p in parts]).reshape(height, width, -1)
                          for k in parts[0]})
        out = {k: torch.stack([v[k] for v in views]) for k in views[0]}
        out['backgrounds'] = bgs
        out['meta'] = dict(n_samples=total, n_rays=len(cams) * width * height,
                           width=width, height=height, n_cameras=len(cams))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass
