"""Packed front-to-back volume compositing (the NeRF quadrature) with early termination.

``composite(sigmas [S], rgbs [S,3], t0 [S], t1 [S], offsets [R+1], t_min, backend)``
-> ``(rgb [R,3], depth_sum [R], acc [R])``: the samples of ray ``r`` are
``offsets[r]:offsets[r+1]`` in increasing ``t``; per ray ``alpha_i = 1 - exp(-sigma_i
(t1_i - t0_i))``, ``T_i = prod_{j<i} (1 - alpha_j)``, ``w_i = T_i alpha_i`` for the samples with
``T_i >= t_min`` (later ones are dropped: early ray termination), ``rgb = sum w c``,
``depth_sum = sum w (t0 + t1) / 2``, ``acc = sum w``. Backends: 'torch' (autograd; the
reference and the CUDA path) and 'cpu' (Numba, ``volume_cpu.py``, hand-written backward).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .hash_encoding import set_numba_threads


def _pad(values: Tensor, offsets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Dense ``[R, Smax, ...]`` copy of packed ``values`` (zeros beyond each ray's end),
    the validity mask and the packed->dense index."""
    counts = offsets[1:] - offsets[:-1]
    n_rays = counts.shape[0]
    smax = int(counts.max()) if n_rays else 0
    ray = torch.repeat_interleave(torch.arange(n_rays, device=values.device), counts)
    pos = torch.arange(values.shape[0], device=values.device) - offsets[:-1][ray]
    dense = values.new_zeros((n_rays, smax) + tuple(values.shape[1:]))
    dense = dense.index_put((ray, pos), values)
    mask = torch.zeros(n_rays, smax, dtype=torch.bool, device=values.device)
    mask[ray, pos] = True
    return dense, mask, ray * smax + pos


def composite_torch(sigmas: Tensor, rgbs: Tensor, t0: Tensor, t1: Tensor, offsets: Tensor,
                    t_min: float = 1e-4) -> tuple[Tensor, Tensor, Tensor]:
    """Torch reference (autograd)."""
    n_rays = offsets.shape[0] - 1
    if sigmas.numel() == 0:
        z = sigmas.new_zeros(n_rays)
        return sigmas.new_zeros(n_rays, 3), z, z
    tau, mask, _ = _pad(sigmas * (t1 - t0), offsets)
    rgb, _, _ = _pad(rgbs, offsets)
    mid, _, _ = _pad(0.5 * (t0 + t1), offsets)
    alpha = (1.0 - torch.exp(-tau)) * mask
    excl = torch.cat([tau.new_zeros(n_rays, 1), torch.cumsum(tau * mask, 1)[:, :-1]], 1)
    trans = torch.exp(-excl)
    keep = (trans.detach() >= t_min) & mask
    w = trans * alpha * keep
    return (w[..., None] * rgb).sum(1), (w * mid).sum(1), w.sum(1)


class _CompositeCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sigmas, rgbs, t0, t1, offsets, t_min):
        from . import volume_cpu as K
        set_numba_threads(sigmas.shape[0])
        n_rays = offsets.shape[0] - 1
        np_dtype = sigmas.detach().numpy().dtype
        a = [x.detach().contiguous().numpy() for x in (sigmas, rgbs, t0, t1)]
        off = offsets.contiguous().numpy()
        out_rgb = np.empty((n_rays, 3), np_dtype)
        out_depth = np.empty(n_rays, np_dtype)
        out_acc = np.empty(n_rays, np_dtype)
        n_used = np.empty(n_rays, np.int64)
        K.composite_forward(*a, off, float(t_min), out_rgb, out_depth, out_acc, n_used)
        outs = [torch.from_numpy(v) for v in (out_rgb, out_depth, out_acc)]
        ctx.save_for_backward(sigmas, rgbs, t0, t1, offsets, torch.from_numpy(n_used), *outs)
        return tuple(outs)

    @staticmethod
    def backward(ctx, g_rgb, g_depth, g_acc):
        from . import volume_cpu as K
        sigmas, rgbs, t0, t1, offsets, n_used, o_rgb, o_depth, o_acc = ctx.saved_tensors
        set_numba_threads(sigmas.shape[0])
        dtype = sigmas.dtype
        g = [torch.zeros_like(o) if x is None else x.to(dtype).contiguous()
             for x, o in ((g_rgb, o_rgb), (g_depth, o_depth), (g_acc, o_acc))]
        g_sig = np.zeros(sigmas.shape[0], sigmas.detach().numpy().dtype)
        g_col = np.zeros((sigmas.shape[0], 3), g_sig.dtype)
        K.composite_backward(*(x.detach().contiguous().numpy() for x in (sigmas, rgbs, t0, t1)),
                             offsets.numpy(), n_used.numpy(), o_rgb.numpy(), o_depth.numpy(),
                             o_acc.numpy(), *(x.numpy() for x in g), g_sig, g_col)
        return torch.from_numpy(g_sig), torch.from_numpy(g_col), None, None, None, None


def composite(sigmas: Tensor, rgbs: Tensor, t0: Tensor, t1: Tensor, offsets: Tensor,
              t_min: float = 1e-4, backend: str = 'auto') -> tuple[Tensor, Tensor, Tensor]:
    """Composite packed samples front to back; see the module docstring."""
    if backend == 'auto':
        backend = 'cpu' if sigmas.device.type == 'cpu' else 'torch'
    if backend == 'torch':
        return composite_torch(sigmas, rgbs, t0, t1, offsets, t_min)
    if backend != 'cpu':
        raise ValueError(f"compositing backend must be 'auto', 'torch' or 'cpu', got "
                         f'{backend!r}')
    t0, t1 = t0.to(sigmas.dtype), t1.to(sigmas.dtype)
    return _CompositeCPU.apply(sigmas, rgbs.to(sigmas.dtype), t0, t1, offsets.long(), t_min)
