"""Small rigid corrections of cameras: 6-vectors (axis-angle ``omega``, translation ``v``)
to 4x4 transforms, and the inverse of rigid transforms (used by pose refinement and by the
test-time pose alignment of held-out views)."""

from __future__ import annotations

import torch
from torch import Tensor

MODES = ('SO3xR3', 'SE3')


def skew(w: Tensor) -> Tensor:
    """``[..., 3] -> [..., 3, 3]`` cross-product matrices."""
    zero = torch.zeros_like(w[..., 0])
    return torch.stack([
        torch.stack([zero, -w[..., 2], w[..., 1]], -1),
        torch.stack([w[..., 2], zero, -w[..., 0]], -1),
        torch.stack([-w[..., 1], w[..., 0], zero], -1)], -2)


def correction_matrices(delta: Tensor, mode: str = 'SO3xR3', trans_scale: float = 1.0
                        ) -> Tensor:
    """Rigid transforms ``[N,4,4]`` of 6-vectors ``delta [N,6]`` (``omega``, ``v``)."""
    if mode not in MODES:
        raise ValueError(f'camera_opt.mode must be one of {MODES}, got {mode!r}')
    omega, v = delta[:, :3], delta[:, 3:] * trans_scale
    n = delta.shape[0]
    if mode == 'SE3':
        twist = torch.zeros(n, 4, 4, dtype=delta.dtype, device=delta.device)
        twist[:, :3, :3] = skew(omega)
        twist[:, :3, 3] = v
        return torch.linalg.matrix_exp(twist)
    out = torch.zeros(n, 4, 4, dtype=delta.dtype, device=delta.device)
    out[:, :3, :3] = torch.linalg.matrix_exp(skew(omega))
    out[:, :3, 3] = v
    out[:, 3, 3] = 1.0
    return out


def invert_rigid(m: Tensor) -> Tensor:
    """Inverse of rigid transforms ``[N,4,4]``."""
    rt = m[:, :3, :3].transpose(1, 2)
    out = torch.zeros_like(m)
    out[:, :3, :3] = rt
    out[:, :3, 3] = -(rt @ m[:, :3, 3:])[..., 0]
    out[:, 3, 3] = 1.0
    return out
