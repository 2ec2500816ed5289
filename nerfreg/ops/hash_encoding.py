"""Multiresolution hash encoding (Mueller et al. 2022, instant-ngp) of points in [0,1]^3.

``hash_encode(x [N,3], tables [L,T,F], resolutions [L], backend)`` -> features ``[N, L*F]``.
Backends: 'torch' (plain torch ops, autograd; the reference and the CUDA path) and 'cpu'
(Numba kernels in ``hash_cpu.py`` with a hand-written backward that scatter-adds into the
tables). Both compute the same function (see ``hash_cpu.py`` for the indexing); gradients
flow to the tables only (the positions are not optimised).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .hash_cpu import PRIME_Y, PRIME_Z

#: below this many points (x levels) the Numba kernels run on one thread
SMALL_WORK = 20_000


def set_numba_threads(work: int) -> None:
    """As many Numba threads as torch uses, but one for small work (a parallel launch
    costs more than it saves there, and much more on a loaded machine)."""
    import numba
    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(1 if work < SMALL_WORK else n)


def level_resolutions(n_levels: int, base_resolution: int, finest_resolution: int) -> list[int]:
    """Grid resolution of every level: a geometric series from base to finest."""
    if n_levels < 1 or base_resolution < 1 or finest_resolution < base_resolution:
        raise ValueError(f'hash grid needs n_levels >= 1 and 1 <= base_resolution <= '
                         f'finest_resolution, got {n_levels}, {base_resolution}, '
                         f'{finest_resolution}')
    if n_levels == 1:
        return [int(base_resolution)]
    growth = math.exp((math.log(finest_resolution) - math.log(base_resolution))
                      / (n_levels - 1))
    return [int(math.floor(base_resolution * growth ** lv + 1e-6)) for lv in range(n_levels)]


def dense_levels(resolutions: list[int], table_size: int) -> list[bool]:
    """Levels whose full vertex grid fits in the table (indexed without hashing)."""
    return [(r + 1) ** 3 <= table_size for r in resolutions]


def hash_encode_torch(x: Tensor, tables: Tensor, resolutions: list[int]) -> Tensor:
    """Torch reference of the encoding (autograd through gathers)."""
    n_lvl, table_size, n_feat = tables.shape
    dense = dense_levels(resolutions, table_size)
    outs = []
    for lv, r in enumerate(resolutions):
        p = x * torch.tensor(float(r), dtype=x.dtype, device=x.device)
        i = torch.floor(p).clamp(0, r - 1)
        frac = p - i
        i = i.long()
        acc = x.new_zeros(x.shape[0], n_feat, dtype=tables.dtype)
        for c in range(8):
            off = torch.tensor([c & 1, (c >> 1) & 1, (c >> 2) & 1], device=x.device)
            v = i + off
            w = torch.where(off.bool(), frac, 1 - frac).prod(dim=1)
            if dense[lv]:
                row = v[:, 0] + v[:, 1] * (r + 1) + v[:, 2] * (r + 1) ** 2
            else:
                row = (v[:, 0] ^ (v[:, 1] * PRIME_Y) ^ (v[:, 2] * PRIME_Z)) & (table_size - 1)
            acc = acc + w[:, None].to(tables.dtype) * tables[lv][row]
        outs.append(acc)
    return torch.cat(outs, dim=1)


class _HashEncodeCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, tables: Tensor, res: np.ndarray, dense: np.ndarray) -> Tensor:
        from . import hash_cpu as K
        set_numba_threads(x.shape[0] * tables.shape[0])
        xn = x.detach().to(tables.dtype).contiguous().numpy()
        resf = res.astype(xn.dtype)
        out = np.empty((xn.shape[0], tables.shape[0] * tables.shape[2]), dtype=xn.dtype)
        K.hash_forward(xn, tables.detach().contiguous().numpy(), res, resf, dense, out)
        ctx.save_for_backward(x, tables)
        ctx.meta = (res, resf, dense, tables.shape, tables.dtype)
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        from . import hash_cpu as K
        x, tables = ctx.saved_tensors
        set_numba_threads(x.shape[0] * ctx.meta[3][0])
        res, resf, dense, shape, dtype = ctx.meta
        xn = x.detach().to(dtype).contiguous().numpy()
        gn = grad_out.to(dtype).contiguous().numpy()
        grad_x = grad_tables = None
        if ctx.needs_input_grad[1]:
            g = np.zeros(shape, dtype=resf.dtype)
            K.hash_backward(xn, gn, res, resf, dense, g)
            grad_tables = torch.from_numpy(g)
        if ctx.needs_input_grad[0]:  # points that move with a camera being refined
            gx = np.empty(xn.shape, dtype=xn.dtype)
            K.hash_backward_x(xn, tables.detach().contiguous().numpy(), gn, res, resf, dense, gx)
            grad_x = torch.from_numpy(gx).to(x.dtype)
        return grad_x, grad_tables, None, None


def hash_encode(x: Tensor, tables: Tensor, resolutions: list[int],
                backend: str = 'auto') -> Tensor:
    """Features ``[N, L*F]`` of points ``x [N,3]`` in [0,1] (clamped to the cube)."""
    if backend == 'auto':
        backend = 'cpu' if tables.device.type == 'cpu' else 'torch'
    x = x.clamp(0.0, 1.0)
    if backend == 'torch':
        return hash_encode_torch(x, tables, resolutions)
    if backend != 'cpu':
        raise ValueError(f"hash encoding backend must be 'auto', 'torch' or 'cpu', got "
                         f'{backend!r}')
    if tables.device.type != 'cpu':
        raise ValueError("backend='cpu' needs CPU tensors; use backend='torch' on CUDA")
    res = np.asarray(resolutions, dtype=np.int64)
    dense = np.asarray(dense_levels(resolutions, tables.shape[1]), dtype=np.bool_)
    return _HashEncodeCPU.apply(x, tables, res, dense)
