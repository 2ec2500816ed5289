"""Numba forward + hand-written backward of SH colours (CPU fast path).

Drop-in equivalent of the SH branch of ``rasterization._colors_per_camera`` (same
arguments, outputs and numerics), fused per Gaussian.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

_JIT = dict(cache=True, nogil=True, fastmath={'nsz', 'arcp', 'contract'})
_CHUNK = 512  # Gaussians per parallel task (scratch arrays are allocated per task)

_K00 = 0.5 / math.sqrt(math.pi)
_K1 = math.sqrt(3.0 / (4.0 * math.pi))
_K2_XY = 0.5 * math.sqrt(15.0 / math.pi)
_K2_0 = 0.25 * math.sqrt(5.0 / math.pi)
_K2_2 = 0.25 * math.sqrt(15.0 / math.pi)
_K3_3 = 0.25 * math.sqrt(35.0 / (2.0 * math.pi))
_K3_2a = 0.5 * math.sqrt(105.0 / math.pi)
_K3_1 = 0.25 * math.sqrt(21.0 / (2.0 * math.pi))
_K3_0 = 0.25 * math.sqrt(7.0 / math.pi)
_K3_2b = 0.25 * math.sqrt(105.0 / math.pi)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _set_threads() -> None:
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


@njit(**_JIT)
def _sh_basis(deg, x, y, z, out, grad):
    """Basis values (and d/d(x, y, z) of each, when grad has rows) at a unit direction."""
    out[0] = _K00
    want = grad.shape[0] > 0
    if want:
        grad[:, :] = 0.0
    if deg >= 1:
        out[1] = -_K1 * y
        out[2] = _K1 * z
        out[3] = -_K1 * x
        if want:
            grad[1, 1] = -_K1
            grad[2, 2] = _K1
            grad[3, 0] = -_K1
    if deg >= 2:
        xx = x * x
        yy = y * y
        zz = z * z
        out[4] = _K2_XY * x * y
        out[5] = -_K2_XY * y * z
        out[6] = _K2_0 * (2.0 * zz - xx - yy)
        out[7] = -_K2_XY * x * z
        out[8] = _K2_2 * (xx - yy)
        if want:
            grad[4, 0] = _K2_XY * y
            grad[4, 1] = _K2_XY * x
            grad[5, 1] = -_K2_XY * z
            grad[5, 2] = -_K2_XY * y
            grad[6, 0] = -2.0 * _K2_0 * x
            grad[6, 1] = -2.0 * _K2_0 * y
            grad[6, 2] = 4.0 * _K2_0 * z
            grad[7, 0] = -_K2_XY * z
            grad[7, 2] = -_K2_XY * x
            grad[8, 0] = 2.0 * _K2_2 * x
            grad[8, 1] = -2.0 * _K2_2 * y
    if deg >= 3:
        xx = x * x
        yy = y * y
        zz = z * z
        out[9] = -_K3_3 * y * (3.0 * xx - yy)
        out[10] = _K3_2a * x * y * z
        out[11] = -_K3_1 * y * (4.0 * zz - xx - yy)
        out[12] = _K3_0 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy)
        out[13] = -_K3_1 * x * (4.0 * zz - xx - yy)
        out[14] = _K3_2b * z * (xx - yy)
        out[15] = -_K3_3 * x * (xx - 3.0 * yy)
        if want:
            grad[9, 0] = -6.0 * _K3_3 * x * y
            grad[9, 1] = -_K3_3 * (3.0 * xx - 3.0 * yy)
            grad[10, 0] = _K3_2a * y * z
            grad[10, 1] = _K3_2a * x * z
            grad[10, 2] = _K3_2a * x * y
            grad[11, 0] = 2.0 * _K3_1 * x * y
            grad[11, 1] = -_K3_1 * (4.0 * zz - xx - 3.0 * yy)
            grad[11, 2] = -8.0 * _K3_1 * y * z
            grad[12, 0] = -6.0 * _K3_0 * x * z
            grad[12, 1] = -6.0 * _K3_0 * y * z
            grad[12, 2] = _K3_0 * (6.0 * zz - 3.0 * xx - 3.0 * yy)
            grad[13, 0] = -_K3_1 * (4.0 * zz - 3.0 * xx - yy)
            grad[13, 1] = 2.0 * _K3_1 * x * y
            grad[13, 2] = -8.0 * _K3_1 * x * z
            grad[14, 0] = 2.0 * _K3_2b * x * z
            grad[14, 1] = -2.0 * _K3_2b * y * z
            grad[14, 2] = _K3_2b * (xx - yy)
            grad[15, 0] = -_K3_3 * (3.0 * xx - 3.0 * yy)
            grad[15, 1] = 6.0 * _K3_3 * x * y


# The coefficients come in two arrays, as models keep them: ``c0 [N, 1, D]`` (degree 0)
# and ``cr [N, K-1, D]`` (the rest; K - 1 may be 0): read and written in place, so that no
# concatenated copy (and no split of its gradient) is made per step.


@njit(parallel=True, **_JIT)
def _sh_fwd(deg, means, campos, c0, cr, out):
    nb = (deg + 1) * (deg + 1)
    n_ch = c0.shape[2]
    n = means.shape[0]
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        basis = np.empty(16)
        nograd = np.empty((0, 3))
        for g in range(chunk * _CHUNK, min(n, (chunk + 1) * _CHUNK)):
            for ci in range(campos.shape[0]):
                dx = means[g, 0] - campos[ci, 0]
                dy = means[g, 1] - campos[ci, 1]
                dz = means[g, 2] - campos[ci, 2]
                inv = 1.0 / max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
                _sh_basis(deg, dx * inv, dy * inv, dz * inv, basis, nograd)
                for ch in range(n_ch):
                    s = basis[0] * c0[g, 0, ch]
                    for k in range(1, nb):
                        s += basis[k] * cr[g, k - 1, ch]
                    out[ci, g, ch] = max(s + 0.5, 0.0)


@njit(parallel=True, **_JIT)
def _sh_bwd(deg, means, campos, c0, cr, colors, v_colors, g_means, g_c0, g_cr):
    """Gradients w.r.t. means, c0 and cr, written in the outputs' dtype (each Gaussian's
    rows are zeroed, then summed over cameras; ``g_cr`` may have no rows: not wanted)."""
    nb = (deg + 1) * (deg + 1)
    n_ch = c0.shape[2]
    n = means.shape[0]
    want_rest = g_cr.shape[0] > 0
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        basis = np.empty(16)
        dbasis = np.empty((16, 3))
        for g in range(chunk * _CHUNK, min(n, (chunk + 1) * _CHUNK)):
            for ch in range(n_ch):
                g_c0[g, 0, ch] = 0.0
            if want_rest:
                for k in range(g_cr.shape[1]):
                    for ch in range(n_ch):
                        g_cr[g, k, ch] = 0.0
            gm0 = 0.0
            gm1 = 0.0
            gm2 = 0.0
            for ci in range(campos.shape[0]):
                dx = means[g, 0] - campos[ci, 0]
                dy = means[g, 1] - campos[ci, 1]
                dz = means[g, 2] - campos[ci, 2]
                nrm = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
                ux = dx / nrm
                uy = dy / nrm
                uz = dz / nrm
                _sh_basis(deg, ux, uy, uz, basis, dbasis)
                gu0 = 0.0
                gu1 = 0.0
                gu2 = 0.0
                for ch in range(n_ch):
                    if not colors[ci, g, ch] > 0.0:  # clamped at 0: no gradient
                        continue
                    gv = float(v_colors[ci, g, ch])
                    g_c0[g, 0, ch] += basis[0] * gv
                    for k in range(1, nb):
                        if want_rest:
                            g_cr[g, k - 1, ch] += basis[k] * gv
                        gb = cr[g, k - 1, ch] * gv
                        gu0 += gb * dbasis[k, 0]
                        gu1 += gb * dbasis[k, 1]
                        gu2 += gb * dbasis[k, 2]
                dot = ux * gu0 + uy * gu1 + uz * gu2
                gm0 += (gu0 - ux * dot) / nrm
                gm1 += (gu1 - uy * dot) / nrm
                gm2 += (gu2 - uz * dot) / nrm
            g_means[g, 0] = gm0
            g_means[g, 1] = gm1
            g_means[g, 2] = gm2


class _SHColorsCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, sh_degree: int, means: Tensor, sh0: Tensor, sh_rest: Tensor,
                campos: Tensor) -> Tensor:
        _set_threads()
        dtype = means.dtype
        arrs = [_np(t.to(dtype)) for t in (means, campos, sh0, sh_rest)]
        out = torch.empty(campos.shape[0], means.shape[0], sh0.shape[2], dtype=dtype)
        _sh_fwd(sh_degree, *arrs, out.numpy())
        ctx.save_for_backward(out)
        ctx.arrs = arrs
        ctx.deg = sh_degree
        return out

    @staticmethod
    def backward(ctx: Any, v_colors: Tensor) -> tuple[Tensor | None, ...]:
        _set_threads()
        (out,) = ctx.saved_tensors
        means, campos, c0, cr = ctx.arrs
        want_rest = ctx.needs_input_grad[3] and cr.shape[1] > 0
        g_means = torch.empty(means.shape, dtype=out.dtype)
        g_c0 = torch.empty(c0.shape, dtype=out.dtype)
        g_cr = torch.empty(cr.shape if want_rest else (0, 0, c0.shape[2]), dtype=out.dtype)
        _sh_bwd(ctx.deg, means, campos, c0, cr, out.numpy(), _np(v_colors.to(out.dtype)),
                g_means.numpy(), g_c0.numpy(), g_cr.numpy())
        return None, g_means, g_c0, (g_cr if want_rest else None), None


def sh_colors_cpu(sh_degree: int, means: Tensor, coeffs: Tensor | tuple[Tensor, Tensor],
                  viewmats: Tensor) -> Tensor:
    """``clamp_min(SH(mean - camera centre) + 0.5, 0)`` per camera: ``[C, N, D]``.

    Same as the SH branch of ``rasterization._colors_per_camera``: coeffs ``[N, K, D]`` with
    ``K >= (sh_degree+1)^2`` (only the first ``(sh_degree+1)^2`` are read), or the pair
    ``(sh0 [N, 1, D], sh_rest [N, K-1, D])`` that models store, read without concatenating.
    """
    if not 0 <= sh_degree <= 3:
        raise ValueError(f'sh_degree must be in 0..3, got {sh_degree}')
    sh0, rest = (coeffs[:, :1], coeffs[:, 1:]) if torch.is_tensor(coeffs) else coeffs
    nb = (sh_degree + 1) ** 2
    if 1 + rest.shape[1] < nb:
        raise ValueError(f'sh_degree={sh_degree} needs {nb} SH coefficients per Gaussian, '
                         f'got {1 + rest.shape[1]}')
    rot, trans = viewmats[:, :3, :3], viewmats[:, :3, 3]
    campos = -torch.einsum('cji,cj->ci', rot, trans).detach()
    return _SHColorsCPU.apply(int(sh_degree), means, sh0, rest, campos)
