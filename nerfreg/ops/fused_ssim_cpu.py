"""Fused L1 + SSIM loss on the CPU: forward and backward in one pass of Numba kernels.

The same quantities as ``nerfreg.metrics.functional.ssim_map(..., padding='same')`` (the 3DGS
training loss): per channel, an 11x11 Gaussian window (sigma 1.5) applied as two 1D passes
over the zero-padded image to ``x, y, x^2, y^2, xy``; ``C1 = 0.01^2``, ``C2 = 0.03^2``. The
forward also computes the gradient of both means w.r.t. the prediction (when asked for),
so the backward is one multiply-add.

With ``S = A1 A2 / (B1 B2)``, ``A1 = 2 mx my + C1``, ``A2 = 2 (sxy - mx my) + C2``, ``B1 =
mx^2 + my^2 + C1``, ``B2 = (sxx - mx^2) + (syy - my^2) + C2`` at every pixel p:

    dS/dmx  = 2 my (A2 - A1) / (B1 B2) - 2 mx S (B2 - B1) / (B1 B2)
    dS/dsxx = -S / B2        dS/dsxy = 2 A1 / (B1 B2)

and, the zero-padded symmetric blur being its own adjoint,
``d mean(S) / dx = [blur(dS/dmx) + 2 x blur(dS/dsxx) + y blur(dS/dsxy)] / n``.

Intermediates are float64 whatever the input dtype; sums are taken per row and then in row
order, so the result does not depend on the number of threads.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

_JIT = dict(cache=True, nogil=True)
WINDOW = 11
SIGMA = 1.5
C1 = 0.01 ** 2
C2 = 0.03 ** 2


def gaussian_taps(window: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    """The normalised 1D window, computed in float32 like the torch reference (float64
    copy of those float32 values)."""
    x = np.arange(window, dtype=np.float32) - np.float32((window - 1) / 2.0)
    w = np.exp(-(x * x) / np.float32(2.0 * sigma ** 2)).astype(np.float32)
    return (w / w.sum(dtype=np.float32)).astype(np.float32).astype(np.float64)


@njit(**_JIT)
def _hblur_rows(src, w, out):
    """``out[i, x] = sum_k w[k] src[i, x + k]`` for every row i: src ``[n, W + 2r]`` holds the
    zero-padded rows (r zeros each side), out ``[n, W]``. k outer, x inner (vectorised)."""
    for i in range(out.shape[0]):
        for x in range(out.shape[1]):
            out[i, x] = 0.0
        for k in range(w.shape[0]):
            wk = w[k]
            for x in range(out.shape[1]):
                out[i, x] += wk * src[i, x + k]


@njit(parallel=True, **_JIT)
def _moments_h(pred, target, w, hx):
    """Horizontal blur of the five moments of every (image, channel) row.

    pred/target ``[B, H, W, C]``; writes ``hx [5, B * C, H, W]``; returns per-row sums of
    ``|pred - target|`` ``[B * C * H]``.
    """
    n_b, height, width, n_c = pred.shape
    r = w.shape[0] // 2
    l1_rows = np.zeros(n_b * n_c * height)
    for row in prange(n_b * n_c * height):
        plane = row // height
        y = row % height
        b = plane // n_c
        c = plane % n_c
        src = np.zeros((5, width + 2 * r))
        s = 0.0
        for x in range(width):
            xv = float(pred[b, y, x, c])
            yv = float(target[b, y, x, c])
            src[0, x + r] = xv
            src[1, x + r] = yv
            src[2, x + r] = xv * xv
            src[3, x + r] = yv * yv
            src[4, x + r] = xv * yv
            s += abs(xv - yv)
        l1_rows[row] = s
        _hblur_rows(src, w, hx[plane, y])
    return l1_rows


@njit(parallel=True, **_JIT)
def _ssim_v(hx, w, want_grad, dmaps):
    """Vertical blur, the SSIM map and (``want_grad``) its partials ``dmaps [P, H, 3, W + 2r]``
    (dS/dmx, dS/dsxx, dS/dsxy; rows zero-padded by r, the padding zeroed by the caller).
    Returns per-row sums of S."""
    n_p, height, width = hx.shape[0], hx.shape[1], hx.shape[3]
    r = w.shape[0] // 2
    s_rows = np.zeros(n_p * height)
    for row in prange(n_p * height):
        plane = row // height
        y = row % height
        k0 = max(0, r - y)
        k1 = min(w.shape[0], height + r - y)
        m = np.zeros((5, width))
        for k in range(k0, k1):
            wk = w[k]
            yy = y + k - r
            for j in range(5):
                for x in range(width):
                    m[j, x] += wk * hx[plane, yy, j, x]
        s = 0.0
        for x in range(width):
            mx = m[0, x]
            my = m[1, x]
            a1 = 2.0 * mx * my + C1
            a2 = 2.0 * (m[4, x] - mx * my) + C2
            b1 = mx * mx + my * my + C1
            b2 = (m[2, x] - mx * mx) + (m[3, x] - my * my) + C2
            den = b1 * b2
            ssim = a1 * a2 / den
            s += ssim
            if want_grad:
                dmaps[plane, y, 0, x + r] = (2.0 * my * (a2 - a1)
                                             - 2.0 * mx * ssim * (b2 - b1)) / den
                dmaps[plane, y, 1, x + r] = -ssim / b2
                dmaps[plane, y, 2, x + r] = 2.0 * a1 / den
        s_rows[row] = s
    return s_rows


@njit(parallel=True, **_JIT)
def _grad_h(dmaps, w, hd):
    """Horizontal blur of the three partial maps into ``hd [P, H, 3, W]``."""
    n_p, height = dmaps.shape[0], dmaps.shape[1]
    for row in prange(n_p * height):
        _hblur_rows(dmaps[row // height, row % height], w, hd[row // height, row % height])


@njit(parallel=True, **_JIT)
def _grad_v(hd, w, pred, target, inv_n, g_l1, g_ssim):
    """Vertical blur of the partials and the chain rule to the prediction:
    ``g_ssim [B, H, W, C]`` = d mean(S) / d pred, ``g_l1`` = d mean|pred - target| / d pred
    (sign, 0 at a tie, as torch's ``abs``)."""
    n_b, height, width, n_c = pred.shape
    r = w.shape[0] // 2
    for row in prange(n_b * n_c * height):
        plane = row // height
        y = row % height
        b = plane // n_c
        c = plane % n_c
        k0 = max(0, r - y)
        k1 = min(w.shape[0], height + r - y)
        m = np.zeros((3, width))
        for k in range(k0, k1):
            wk = w[k]
            yy = y + k - r
            for j in range(3):
                for x in range(width):
                    m[j, x] += wk * hd[plane, yy, j, x]
        for x in range(width):
            xv = float(pred[b, y, x, c])
            yv = float(target[b, y, x, c])
            g_ssim[b, y, x, c] = (m[0, x] + 2.0 * xv * m[1, x] + yv * m[2, x]) * inv_n
            d = xv - yv
            g_l1[b, y, x, c] = (1.0 if d > 0 else (-1.0 if d < 0 else 0.0)) * inv_n


_TAPS = gaussian_taps()


def l1_ssim_numpy(pred: np.ndarray, target: np.ndarray, want_grad: bool
                  ) -> tuple[float, float, np.ndarray | None, np.ndarray | None]:
    """``mean|pred - target|``, ``mean SSIM`` ('same' padding) of ``[B, H, W, C]`` arrays and,
    with ``want_grad``, their gradients w.r.t. ``pred`` (in ``pred``'s dtype)."""
    n_b, height, width, n_c = pred.shape
    n_p = n_b * n_c
    r = _TAPS.shape[0] // 2
    hx = np.empty((n_p, height, 5, width))
    l1_rows = _moments_h(pred, target, _TAPS, hx)
    dmaps = np.zeros((n_p, height, 3, width + 2 * r) if want_grad else (0, 0, 3, 0))
    s_rows = _ssim_v(hx, _TAPS, want_grad, dmaps)
    n = pred.size
    l1 = math.fsum(l1_rows) / n
    ssim = math.fsum(s_rows) / n
    if not want_grad:
        return l1, ssim, None, None
    hd = np.empty((n_p, height, 3, width))
    _grad_h(dmaps, _TAPS, hd)
    g_l1 = np.empty(pred.shape, dtype=pred.dtype)
    g_ssim = np.empty(pred.shape, dtype=pred.dtype)
    _grad_v(hd, _TAPS, pred, target, 1.0 / n, g_l1, g_ssim)
    return l1, ssim, g_l1, g_ssim


class _FusedL1SSIM(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        numba.set_num_threads(max(1, min(torch.get_num_threads(),
                                         numba.config.NUMBA_NUM_THREADS)))
        p = pred.detach().contiguous().numpy()
        t = target.detach().to(pred.dtype).contiguous().numpy()
        l1, ssim, g_l1, g_ssim = l1_ssim_numpy(p, t, ctx.needs_input_grad[0])
        if g_l1 is not None:
            ctx.grads = (torch.from_numpy(g_l1), torch.from_numpy(g_ssim))
        return pred.new_tensor(l1), pred.new_tensor(ssim)

    @staticmethod
    def backward(ctx: Any, grad_l1: Tensor, grad_ssim: Tensor) -> tuple[Tensor | None, None]:
        g_l1, g_ssim = ctx.grads
        return g_l1 * grad_l1 + g_ssim * grad_ssim, None


def fused_l1_ssim_cpu(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean |pred - target|, mean SSIM)`` of CPU images ``[B, H, W, C]`` (or ``[H, W, C]``)
    with the 'same'-padded 11x11 Gaussian window; differentiable w.r.t. ``pred`` only."""
    if pred.shape != target.shape:
        raise ValueError(f'fused_l1_ssim_cpu: shapes differ, {tuple(pred.shape)} vs '
                         f'{tuple(target.shape)}')
    if pred.device.type != 'cpu':
        raise ValueError(f'fused_l1_ssim_cpu needs CPU tensors, got {pred.device}; use '
                         'nerfreg.models.losses.l1_ssim_loss(fused=False) elsewhere')
    if pred.dtype not in (torch.float32, torch.float64):
        raise ValueError(f'fused_l1_ssim_cpu: pred must be float32 or float64, got {pred.dtype}')
    if pred.dim() == 3:
        pred, target = pred[None], target[None]
    if pred.dim() != 4:
        raise ValueError(f'fused_l1_ssim_cpu: images must be [B, H, W, C], got '
                         f'{tuple(pred.shape)}')
    return _FusedL1SSIM.apply(pred, target)
