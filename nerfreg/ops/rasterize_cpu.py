"""Fast CPU ``rasterize_to_pixels`` (backend 'cpu'): Numba forward and hand-written backward.

Same numerics as ``rasterize_torch.py`` (docs/architecture.md, "Rasterization"): tiles are
binned with the torch backend's integer rule and depth-sorted (ties by Gaussian index),
every pixel composites its tile's list front to back with the 1/255, 0.99 and 1e-4 rules,
and the backward walks each pixel's list back to front from the stored final transmittance
and last composited Gaussian, as the CUDA 3DGS kernel does. The Numba kernels live in
``tile_binning_cpu.py`` (packed records, culling, binning) and ``composite_cpu.py``
(compositing and its backward); they are compiled on first use and cached on disk.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numba
import numpy as np
import torch
from torch import Tensor

from . import composite_simd_cpu as simd
from .composite_cpu import composite_backward, composite_forward, sum_intersection_gradients
from .rasterize_torch import ALPHA_MAX, ALPHA_MIN, T_MIN  # one definition of the rules
from .tile_binning_cpu import (
    MAX_BANDS,
    balanced_tile_order,
    bin_gaussians,
    list_tiles,
    prepare_records,
    record_width,
)

#: Counters of the last forward call (profiling): intersections, alpha evaluations
#: ((pixel, Gaussian) pairs whose sigma was computed for a live pixel: inside the exact
#: row spans for the scalar kernels, the pixel boxes for the SIMD ones), pixels, forward
#: kernel seconds (wall and process CPU time, all threads).
LAST_FORWARD_STATS: dict[str, float] = {}


def _np(t: Tensor) -> np.ndarray:
    """NumPy view of a CPU tensor (a copy only when it is not contiguous)."""
    return t.detach().contiguous().numpy()


def _set_threads() -> None:
    """Use as many Numba threads as torch does (capped by Numba's pool size)."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


#: 'auto': the SIMD float32 kernels where they apply; 'scalar': always the scalar kernels,
#: whose float32 results are bit-identical to nerfreg before the SIMD kernels (float64
#: transmittance; e.g. to reproduce an old run exactly).
KERNELS = 'auto'


def compositing_kernels(dtype: np.dtype, tile_size: int, n_ch: int) -> tuple[Any, Any]:
    """(forward, backward) compositing kernels: the SIMD float32 ones
    (``composite_simd_cpu``) when they apply, else the scalar ones (float64, tiles wider
    than ``simd.MAX_TILE``, more than ``simd.MAX_CH`` channels, ``KERNELS = 'scalar'``)."""
    if KERNELS not in ('auto', 'scalar'):
        raise ValueError(f"rasterize_cpu.KERNELS must be 'auto' or 'scalar', got {KERNELS!r}")
    if (KERNELS == 'auto' and dtype == np.float32 and tile_size <= simd.MAX_TILE
            and n_ch <= simd.MAX_CH):
        return simd.composite_forward_f32, simd.composite_backward_f32
    return composite_forward, composite_backward


def depth_order(depths: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Ids of the Gaussians with ``count > 0`` sorted by (depth, id).

    float32 depths are sorted as unique uint64 keys (order-preserving float bits, then the
    id), which equals a stable sort and is several times faster than NumPy's stable argsort.
    """
    vis = np.flatnonzero(count > 0)
    if depths.dtype != np.float32 or vis.size >= 2 ** 32:
        return vis[np.argsort(depths[vis], kind='stable')]
    bits = (depths[vis] + np.float32(0.0)).view(np.uint32).astype(np.uint64)  # -0 -> +0
    neg = (bits & np.uint64(0x80000000)) != 0
    bits = np.where(neg, bits ^ np.uint64(0xFFFFFFFF), bits | np.uint64(0x80000000))
    keys = np.sort((bits << np.uint64(32)) | np.arange(vis.size, dtype=np.uint64))
    return vis[(keys & np.uint64(0xFFFFFFFF)).astype(np.int64)]


class _Binning:
    """Per-call packed Gaussian records and depth-sorted, culled tile lists."""

    def __init__(self, means2d: np.ndarray, conics: np.ndarray, colors: np.ndarray,
                 opacities: np.ndarray, depths: np.ndarray, radii: np.ndarray,
                 consts: np.ndarray, n_cams: int, n: int, width: int, height: int,
                 tile_size: int) -> None:
        g = n_cams * n
        self.tiles_x = tx = math.ceil(width / tile_size)
        self.tiles_y = ty = math.ceil(height / tile_size)
        self.rec = np.empty((g, record_width(colors.shape[1])), dtype=consts.dtype)
        rect = np.zeros((g, 4), dtype=np.int64)
        count = np.empty(g, dtype=np.int64)
        bands = np.empty((g, 2 * MAX_BANDS), dtype=np.int32)
        prepare_records(means2d, conics, colors, opacities, radii, consts, tx, ty, width,
                        height, self.rec, rect, count, bands)
        self.g_off = np.zeros(g + 1, dtype=np.int64)
        np.cumsum(count, out=self.g_off[1:])
        g_tiles = np.empty(int(self.g_off[-1]), dtype=np.int32)
        list_tiles(self.rec, rect, self.g_off, bands, consts, tx, ty, width, height, n, g_tiles)
        order = depth_order(depths, count)
        n_chunks = max(1, min(4 * numba.get_num_threads(), order.size // 2048))
        self.tile_off, self.isect_gid, self.g_isect = bin_gaussians(
            order, self.g_off, g_tiles, n_cams * tx * ty, n_chunks)
        self.tile_order = balanced_tile_order(np.diff(self.tile_off), numba.get_num_threads())

    @property
    def n_isects(self) -> int:
        return int(self.isect_gid.shape[0])


class _RasterizeCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor,
                depths: Tensor, radii: Tensor, width: int, height: int, tile_size: int,
                backgrounds: Tensor | None,
                absgrad_sink: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n_cams, n = means2d.shape[:2]
        n_ch = colors.shape[-1]
        dtype = means2d.dtype
        npdt = np.float32 if dtype == torch.float32 else np.float64
        _set_threads()
        consts = np.array([ALPHA_MIN, ALPHA_MAX, T_MIN, 0.5, tile_size], dtype=npdt)
        g = n_cams * n
        bg = (_np(backgrounds.to(dtype)).reshape(n_cams, n_ch) if backgrounds is not None
              else np.zeros((0, n_ch), dtype=npdt))
        binning = _Binning(_np(means2d).reshape(g, 2), _np(conics).reshape(g, 3),
                           _np(colors).reshape(g, n_ch), _np(opacities).reshape(g),
                           _np(depths).reshape(g), _np(radii.to(dtype)).reshape(g), consts,
                           n_cams, n, width, height, tile_size)
        out_color = torch.empty(n_cams, height, width, n_ch, dtype=dtype)
        out_alpha = torch.empty(n_cams, height, width, 1, dtype=dtype)
        out_t = np.empty((n_cams, height, width))  # float64
        out_last = np.empty((n_cams, height, width), dtype=np.int64)
        evals = np.zeros(binning.tile_off.shape[0] - 1, dtype=np.int64)
        t0, c0 = time.perf_counter(), time.process_time()
        fwd, bwd = compositing_kernels(npdt, tile_size, n_ch)
        fwd(binning.tile_off, binning.isect_gid, binning.rec, bg, consts, n_cams, width, height,
            binning.tiles_x, binning.tiles_y, binning.tile_order, out_color.numpy(),
            out_alpha.numpy()[..., 0], out_t, out_last, evals)
        LAST_FORWARD_STATS.update(isects=binning.n_isects, alpha_evals=int(evals.sum()),
                                  pixels=n_cams * width * height,
                                  kernel_s=time.perf_counter() - t0,
                                  kernel_cpu_s=time.process_time() - c0,
                                  threads=numba.get_num_threads())
        # the backward must pair with the forward's kernel (its transmittance precision)
        ctx.state = (binning, bg, consts, out_t, out_last, (n_cams, n, n_ch, width, height), bwd)
        ctx.has_bg = backgrounds is not None
        ctx.absgrad = absgrad_sink is not None
        return out_color, out_alpha

    @staticmethod
    def backward(ctx: Any, grad_color: Tensor, grad_alpha: Tensor) -> tuple[Tensor | None, ...]:
        binning, bg, consts, out_t, out_last, dims, bwd = ctx.state
        n_cams, n, n_ch, width, height = dims
        dtype = torch.float32 if consts.dtype == np.float32 else torch.float64
        _set_threads()
        g_color = _np(grad_color.to(dtype))
        g_alpha = _np(grad_alpha.to(dtype))[..., 0]
        n_col = 6 + n_ch + (2 if ctx.absgrad else 0)  # + sum |d mean2d| per pixel
        gi = np.empty((binning.n_isects, n_col), dtype=consts.dtype)
        tile_bg = np.empty((n_cams * binning.tiles_x * binning.tiles_y, n_ch),
                           dtype=consts.dtype)
        bwd(binning.tile_off, binning.isect_gid, binning.rec, bg, consts, n_cams, width, height,
            binning.tiles_x, binning.tiles_y, binning.tile_order, out_t, out_last, g_color,
            g_alpha, gi, tile_bg)
        v = torch.zeros(n_cams, n, n_col, dtype=dtype)
        sum_intersection_gradients(binning.g_off, binning.g_isect, gi, v.numpy().reshape(-1, n_col))
        v_bg = None
        if ctx.has_bg and ctx.needs_input_grad[9]:
            v_bg = torch.from_numpy(tile_bg.reshape(n_cams, -1, n_ch).sum(axis=1))
        v_abs = v[..., 6 + n_ch:] if ctx.absgrad else None
        return (v[..., 0:2], v[..., 2:5], v[..., 6:6 + n_ch], v[..., 5], None, None, None, None,
                None, v_bg, v_abs)


def rasterize_to_pixels_cpu(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    tile_size: int = 16,
    backgrounds: Tensor | None = None,
    absgrad_sink: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Rasterize projected Gaussians on the CPU (contract signature; docs/architecture.md).

    Args:
        means2d ``[C, N, 2]``, conics ``[C, N, 3]`` (a, b, c of the inverse covariance),
        colors ``[C, N, D]`` (any D), opacities ``[C, N]``, depths ``[C, N]`` (sort key),
        radii ``[C, N]`` (0 = invisible), backgrounds ``[C, D]`` or None. float32 or float64;
        all float inputs are cast to the dtype of ``means2d``.
    Returns:
        ``colors [C, H, W, D]`` and ``alphas [C, H, W, 1]`` (= 1 - final transmittance);
        differentiable w.r.t. means2d, conics, colors, opacities and backgrounds.
        ``absgrad_sink``: an optional ``[C, N, 2]`` tensor requiring grad (its values are
        unused); its gradient becomes the per-pixel sum of ``|d loss / d means2d|``
        (gsplat's ``absgrad``).
    """
    if means2d.device.type != 'cpu':
        raise ValueError(f"backend 'cpu' needs CPU tensors, got {means2d.device}")
    if means2d.dim() != 3 or means2d.shape[-1] != 2:
        raise ValueError(f'means2d must be [C, N, 2], got {tuple(means2d.shape)}')
    n_cams, n = means2d.shape[:2]
    if radii.dim() == 3:  # per-axis radii [C, N, 2] (gsplat >= 1.5): use the larger one
        radii = radii.max(dim=-1).values
    dtype = means2d.dtype
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f'means2d must be float32 or float64, got {dtype}')
    if colors.dim() == 2:
        colors = colors.unsqueeze(0).expand(n_cams, n, colors.shape[-1])
    return _RasterizeCPU.apply(
        means2d, conics.to(dtype), colors.to(dtype), opacities.to(dtype), depths, radii,
        int(width), int(height), int(tile_size),
        None if backgrounds is None else backgrounds.to(dtype), absgrad_sink)
