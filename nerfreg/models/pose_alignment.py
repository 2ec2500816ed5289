"""Test-time pose alignment of held-out views (``camera_opt.eval_align=True``).

Pose refinement moves the training cameras, and with them, slightly, the frame the scene
is reconstructed in; held-out views keep their recorded poses, so part of what they lose
is a misregistration, not a worse scene. This protocol (as in BARF and NeRF--) fits a rigid
correction of each held-out camera to that view's own photo, with the scene frozen, and
scores the render from the fitted pose. It sees no pixel of any other view, keeps nothing
between views and changes nothing in the model; its metrics are reported under their own
names (``psnr_aligned``), beside the plain ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from nerfreg.cameras.rigid import correction_matrices, invert_rigid

#: ``render(overrides) -> rgb [B,H,W,3]``: the view rendered again with these render-input
#: overrides, as the plain metrics see it (after the appearance transform).
ViewRenderer = Callable[[dict[str, Any]], Tensor]


def view_overrides(batch: dict[str, Any], viewmats: Tensor) -> dict[str, Any]:
    """Render-input overrides that put whole views at world-to-camera ``viewmats``."""
    out: dict[str, Any] = dict(viewmats=viewmats)
    cam = batch.get('camera')
    if cam is not None:
        out['camera'] = replace(cam, R=viewmats[:, :3, :3], t=viewmats[:, :3, 3])
    return out


def align_views(render: ViewRenderer, target: Tensor, batch: dict[str, Any], *,
                steps: int = 100, lr: float = 5e-3, mode: str = 'SO3xR3',
                extent: float = 1.0, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Fit rigid corrections ``delta [B,6]`` (axis-angle, translation in ``extent`` units;
    see ``camera_opt``) of the views in ``batch`` to ``target [B,H,W,3]`` by Adam on the
    (masked) mean squared error, the lr decaying along a half cosine to 1% over ``steps``.
    Returns ``(delta, rgb)``: the fitted corrections and the render from them."""
    if 'viewmats' not in batch:
        raise ValueError('camera_opt.eval_align needs whole views with `viewmats`; this batch '
                         f'has {sorted(batch)}')
    viewmats = batch['viewmats'].detach()
    weight = torch.ones_like(target[..., :1]) if mask is None else mask.to(target)[..., None]
    weight = weight.expand_as(target)
    norm = weight.flatten(1).sum(1).clamp_min(1.0)
    delta = torch.zeros(viewmats.shape[0], 6, dtype=viewmats.dtype, device=viewmats.device,
                        requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)

    def pose(d: Tensor) -> dict[str, Any]:
        correction = correction_matrices(d, mode, extent)
        return view_overrides(batch, invert_rigid(correction) @ viewmats)

    with torch.enable_grad():
        for i in range(max(0, int(steps))):
            for group in opt.param_groups:
                group['lr'] = lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * i / steps)))
            rgb = render(pose(delta))
            if not rgb.requires_grad:
                raise RuntimeError('camera_opt.eval_align: the renderer gives no gradient with '
                                   'respect to the camera of a held-out view, so it cannot be '
                                   'aligned; switch eval_align off for this model')
            err = (rgb - target).pow(2) * weight
            loss = (err.flatten(1).sum(1) / norm).sum()  # views are independent
            (delta.grad,) = torch.autograd.grad(loss, [delta])
            opt.step()
    with torch.no_grad():
        delta = delta.detach()
        return delta, render(pose(delta))


def correction_size(delta: Tensor) -> tuple[Tensor, Tensor]:
    """Rotation angle (degrees) and translation (percent of the extent) of ``delta [B,6]``."""
    return torch.rad2deg(delta[:, :3].norm(dim=1)), 100.0 * delta[:, 3:].norm(dim=1)
