"""Numba forward + hand-written backward of EWA projection (CPU fast path).

Drop-in equivalent of ``projection.project_gaussians`` (same arguments, outputs and
numerics: see docs/architecture.md), fused per Gaussian so that 100k Gaussians cost a few
milliseconds instead of a few hundred autograd ops on ``[C, N, 3, 3]`` tensors. The SH
colour kernels live in ``sh_cpu.py`` (``sh_colors_cpu`` is re-exported here).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from .sh_cpu import sh_colors_cpu  # noqa: F401  (re-exported: it used to live here)

_JIT = dict(cache=True, nogil=True, fastmath={'nsz', 'arcp', 'contract'})

_CHUNK = 512  # Gaussians per parallel task (scratch arrays are allocated per task)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _set_threads() -> None:
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


# ----------------------------------------------------------------------------- projection


@njit(**_JIT)
def _rotmat(w, x, y, z, r):
    r[0, 0] = 1 - 2 * (y * y + z * z)
    r[0, 1] = 2 * (x * y - w * z)
    r[0, 2] = 2 * (x * z + w * y)
    r[1, 0] = 2 * (x * y + w * z)
    r[1, 1] = 1 - 2 * (x * x + z * z)
    r[1, 2] = 2 * (y * z - w * x)
    r[2, 0] = 2 * (x * z - w * y)
    r[2, 1] = 2 * (y * z + w * x)
    r[2, 2] = 1 - 2 * (x * x + y * y)


@njit(**_JIT)
def _cov_cam(quat, scale, view, m, r, sig_c):
    """Camera-space covariance W (R S)(R S)^T W^T into sig_c; also leaves M = R S in m."""
    qn = math.sqrt(quat[0] ** 2 + quat[1] ** 2 + quat[2] ** 2 + quat[3] ** 2)
    inv = 1.0 / max(qn, 1e-12)
    _rotmat(quat[0] * inv, quat[1] * inv, quat[2] * inv, quat[3] * inv, r)
    for i in range(3):
        for j in range(3):
            m[i, j] = r[i, j] * scale[j]
    # wm = W @ M ; sig_c = wm wm^T
    for i in range(3):
        for j in range(3):
            s = 0.0
            for k in range(3):
                s += view[i, k] * m[k, j]
            r[i, j] = s  # reuse r as W M
    for i in range(3):
        for j in range(3):
            s = 0.0
            for k in range(3):
                s += r[i, k] * r[j, k]
            sig_c[i, j] = s


@njit(**_JIT)
def _project_fwd_one(g, means, quats, scales, viewmats, ks, width, height, eps2d, near, far,
                     radius_clip, radii, means2d, depths, conics, comps, m, r, sig):
    n_cams = viewmats.shape[0]
    want_comp = comps.shape[0] > 0
    for ci in range(n_cams):
        view = viewmats[ci, :3, :3]
        _cov_cam(quats[g], scales[g], view, m, r, sig)
        px = view[0, 0] * means[g, 0] + view[0, 1] * means[g, 1] + view[0, 2] * means[g, 2] \
            + viewmats[ci, 0, 3]
        py = view[1, 0] * means[g, 0] + view[1, 1] * means[g, 1] + view[1, 2] * means[g, 2] \
            + viewmats[ci, 1, 3]
        pz = view[2, 0] * means[g, 0] + view[2, 1] * means[g, 1] + view[2, 2] * means[g, 2] \
            + viewmats[ci, 2, 3]
        depths[ci, g] = pz
        radii[ci, g] = 0
        means2d[ci, g, 0] = 0.0
        means2d[ci, g, 1] = 0.0
        conics[ci, g, 0] = 0.0
        conics[ci, g, 1] = 0.0
        conics[ci, g, 2] = 0.0
        if want_comp:
            comps[ci, g] = 0.0
        if not (pz > near and pz < far):
            continue
        fx = ks[ci, 0, 0]
        fy = ks[ci, 1, 1]
        cx = ks[ci, 0, 2]
        cy = ks[ci, 1, 2]
        tan_x = 0.5 * width / fx
        tan_y = 0.5 * height / fy
        u = min(max(px / pz, -(cx / fx + 0.3 * tan_x)), (width - cx) / fx + 0.3 * tan_x)
        v = min(max(py / pz, -(cy / fy + 0.3 * tan_y)), (height - cy) / fy + 0.3 * tan_y)
        j00 = fx / pz
        j02 = -fx * u / pz
        j11 = fy / pz
        j12 = -fy * v / pz
        # cov2d = J sig J^T with J = [[j00, 0, j02], [0, j11, j12]]
        a = j00 * (j00 * sig[0, 0] + j02 * sig[0, 2]) + j02 * (j00 * sig[2, 0] + j02 * sig[2, 2])
        b = j00 * (j11 * sig[0, 1] + j12 * sig[0, 2]) + j02 * (j11 * sig[2, 1] + j12 * sig[2, 2])
        c = j11 * (j11 * sig[1, 1] + j12 * sig[1, 2]) + j12 * (j11 * sig[2, 1] + j12 * sig[2, 2])
        a0 = a
        c0 = c
        a = a0 + eps2d
        c = c0 + eps2d
        det = a * c - b * b
        if not det > 0:
            continue
        if want_comp:  # anti-aliasing: opacity factor sqrt(det(cov2d) / det(cov2d + eps I))
            det0 = a0 * c0 - b * b
            if det0 > 0:
                comps[ci, g] = math.sqrt(det0 / det)
        conics[ci, g, 0] = c / det
        conics[ci, g, 1] = -b / det
        conics[ci, g, 2] = a / det
        mx = fx * px / pz + cx
        my = fy * py / pz + cy
        means2d[ci, g, 0] = mx
        means2d[ci, g, 1] = my
        hd = 0.5 * (a - c)
        lam = 0.5 * (a + c) + math.sqrt(hd * hd + b * b)
        rad = math.ceil(3.0 * math.sqrt(max(lam, 0.0)))
        mxf = means2d[ci, g, 0]
        myf = means2d[ci, g, 1]
        if mxf + rad > 0 and mxf - rad < width and myf + rad > 0 and myf - rad < height \
                and rad > radius_clip:
            radii[ci, g] = int(rad)


@njit(parallel=True, **_JIT)
def _project_fwd(means, quats, scales, viewmats, ks, width, height, eps2d, near, far,
                 radius_clip, radii, means2d, depths, conics, comps):
    n_chunks = (means.shape[0] + _CHUNK - 1) // _CHUNK
    for chunk in prange(n_chunks):
        m = np.empty((3, 3))
        r = np.empty((3, 3))
        sig = np.empty((3, 3))
        for g in range(chunk * _CHUNK, min(means.shape[0], (chunk + 1) * _CHUNK)):
            _project_fwd_one(g, means, quats, scales, viewmats, ks, width, height, eps2d,
                             near, far, radius_clip, radii, means2d, depths, conics, comps,
                             m, r, sig)


@njit(**_JIT)
def _project_bwd_one(g, means, quats, scales, viewmats, ks, width, height, eps2d, near, far,
                     v_means2d, v_depths, v_conics, v_comps, g_means, g_quats, g_scales,
                     m, wm, sig, gsig, tmp, gm, gp, t0, t1, r, gr):
    n_cams = viewmats.shape[0]
    want_comp = v_comps.shape[0] > 0
    gm[:, :] = 0.0
    qn = math.sqrt(quats[g, 0] ** 2 + quats[g, 1] ** 2 + quats[g, 2] ** 2 + quats[g, 3] ** 2)
    inv_qn = 1.0 / max(qn, 1e-12)
    for ci in range(n_cams):
        view = viewmats[ci, :3, :3]
        px = view[0, 0] * means[g, 0] + view[0, 1] * means[g, 1] + view[0, 2] * means[g, 2] \
            + viewmats[ci, 0, 3]
        py = view[1, 0] * means[g, 0] + view[1, 1] * means[g, 1] + view[1, 2] * means[g, 2] \
            + viewmats[ci, 1, 3]
        pz = view[2, 0] * means[g, 0] + view[2, 1] * means[g, 1] + view[2, 2] * means[g, 2] \
            + viewmats[ci, 2, 3]
        g_px = 0.0
        g_py = 0.0
        g_pz = float(v_depths[ci, g])
        if pz > near and pz < far:
            _cov_cam(quats[g], scales[g], view, m, wm, sig)
            fx = ks[ci, 0, 0]
            fy = ks[ci, 1, 1]
            cx = ks[ci, 0, 2]
            cy = ks[ci, 1, 2]
            tan_x = 0.5 * width / fx
            tan_y = 0.5 * height / fy
            u_raw = px / pz
            v_raw = py / pz
            lxn = -(cx / fx + 0.3 * tan_x)
            lxp = (width - cx) / fx + 0.3 * tan_x
            lyn = -(cy / fy + 0.3 * tan_y)
            lyp = (height - cy) / fy + 0.3 * tan_y
            u = min(max(u_raw, lxn), lxp)
            v = min(max(v_raw, lyn), lyp)
            j00 = fx / pz
            j02 = -fx * u / pz
            j11 = fy / pz
            j12 = -fy * v / pz
            a0 = j00 * (j00 * sig[0, 0] + j02 * sig[0, 2]) \
                + j02 * (j00 * sig[2, 0] + j02 * sig[2, 2])
            b = j00 * (j11 * sig[0, 1] + j12 * sig[0, 2]) \
                + j02 * (j11 * sig[2, 1] + j12 * sig[2, 2])
            c0 = j11 * (j11 * sig[1, 1] + j12 * sig[1, 2]) \
                + j12 * (j11 * sig[2, 1] + j12 * sig[2, 2])
            a = a0 + eps2d
            c = c0 + eps2d
            det = a * c - b * b
            if det > 0:
                # conic = (c, -b, a) / det
                g0 = float(v_conics[ci, g, 0])
                g1 = float(v_conics[ci, g, 1])
                g2 = float(v_conics[ci, g, 2])
                g_det = -(g0 * c - g1 * b + g2 * a) / (det * det)
                ga = g2 / det + g_det * c
                gc = g0 / det + g_det * a
                gb = -g1 / det - 2.0 * g_det * b
                det0 = a0 * c0 - b * b
                if want_comp and det0 > 0:
                    # comp = sqrt(det0 / det): d comp = comp / 2 (d det0 / det0 - d det / det)
                    gk = 0.5 * float(v_comps[ci, g]) * math.sqrt(det0 / det)
                    ga += gk * (c0 / det0 - c / det)
                    gc += gk * (a0 / det0 - a / det)
                    gb += gk * 2.0 * b * (1.0 / det - 1.0 / det0)
                # symmetric 2x2 gradient of cov2d: [[ga, gb/2], [gb/2, gc]]
                h01 = 0.5 * gb
                # J = [[j00, 0, j02], [0, j11, j12]]; gsig = J^T G J (3x3 symmetric)
                jr0 = (j00, 0.0, j02)
                jr1 = (0.0, j11, j12)
                for i in range(3):
                    for k in range(3):
                        gsig[i, k] = ga * jr0[i] * jr0[k] + gc * jr1[i] * jr1[k] \
                            + h01 * (jr0[i] * jr1[k] + jr1[i] * jr0[k])
                # dL/dJ = 2 G J sig (rows: 0 and 1)
                for k in range(3):
                    s0 = jr0[0] * sig[0, k] + jr0[1] * sig[1, k] + jr0[2] * sig[2, k]
                    s1 = jr1[0] * sig[0, k] + jr1[1] * sig[1, k] + jr1[2] * sig[2, k]
                    t0[k] = 2.0 * (ga * s0 + h01 * s1)
                    t1[k] = 2.0 * (h01 * s0 + gc * s1)
                g_j00 = t0[0]
                g_j02 = t0[2]
                g_j11 = t1[1]
                g_j12 = t1[2]
                # means2d = (fx px / pz + cx, fy py / pz + cy)
                gmx = float(v_means2d[ci, g, 0])
                gmy = float(v_means2d[ci, g, 1])
                g_px += gmx * fx / pz
                g_py += gmy * fy / pz
                g_pz += -(gmx * fx * px + gmy * fy * py) / (pz * pz)
                # J entries
                g_pz += -g_j00 * fx / (pz * pz) + g_j02 * fx * u / (pz * pz) \
                    - g_j11 * fy / (pz * pz) + g_j12 * fy * v / (pz * pz)
                g_u = -g_j02 * fx / pz
                g_v = -g_j12 * fy / pz
                if lxn < u_raw < lxp:
                    g_px += g_u / pz
                    g_pz += -g_u * px / (pz * pz)
                if lyn < v_raw < lyp:
                    g_py += g_v / pz
                    g_pz += -g_v * py / (pz * pz)
                # sig_c = W Sigma W^T -> gSigma = W^T gsig W ; Sigma = M M^T -> gM = 2 gSigma M
                for i in range(3):
                    for k in range(3):
                        s = 0.0
                        for q in range(3):
                            s += view[q, i] * gsig[q, k]
                        tmp[i, k] = s
                for i in range(3):
                    for k in range(3):
                        s = 0.0
                        for q in range(3):
                            s += tmp[i, q] * view[q, k]
                        wm[i, k] = s  # gSigma
                for i in range(3):
                    for k in range(3):
                        s = 0.0
                        for q in range(3):
                            s += wm[i, q] * m[q, k]
                        gm[i, k] += 2.0 * s
        gp[0] = g_px
        gp[1] = g_py
        gp[2] = g_pz
        for k in range(3):
            g_means[g, k] += view[0, k] * gp[0] + view[1, k] * gp[1] + view[2, k] * gp[2]
    # M = R diag(s)
    w = quats[g, 0] * inv_qn
    x = quats[g, 1] * inv_qn
    y = quats[g, 2] * inv_qn
    z = quats[g, 3] * inv_qn
    _rotmat(w, x, y, z, r)
    for j in range(3):
        s = 0.0
        for i in range(3):
            gr[i, j] = gm[i, j] * scales[g, j]
            s += gm[i, j] * r[i, j]
        g_scales[g, j] += s
    gw = 2 * (-z * gr[0, 1] + y * gr[0, 2] + z * gr[1, 0] - x * gr[1, 2] - y * gr[2, 0]
              + x * gr[2, 1])
    gx = 2 * (y * gr[0, 1] + z * gr[0, 2] + y * gr[1, 0] - 2 * x * gr[1, 1] - w * gr[1, 2]
              + z * gr[2, 0] + w * gr[2, 1] - 2 * x * gr[2, 2])
    gy = 2 * (-2 * y * gr[0, 0] + x * gr[0, 1] + w * gr[0, 2] + x * gr[1, 0] + z * gr[1, 2]
              - w * gr[2, 0] + z * gr[2, 1] - 2 * y * gr[2, 2])
    gz = 2 * (-2 * z * gr[0, 0] - w * gr[0, 1] + x * gr[0, 2] + w * gr[1, 0]
              - 2 * z * gr[1, 1] + y * gr[1, 2] + x * gr[2, 0] + y * gr[2, 1])
    dot = w * gw + x * gx + y * gy + z * gz
    g_quats[g, 0] += (gw - w * dot) * inv_qn
    g_quats[g, 1] += (gx - x * dot) * inv_qn
    g_quats[g, 2] += (gy - y * dot) * inv_qn
    g_quats[g, 3] += (gz - z * dot) * inv_qn


@njit(parallel=True, **_JIT)
def _project_bwd(means, quats, scales, viewmats, ks, width, height, eps2d, near, far,
                 v_means2d, v_depths, v_conics, v_comps, g_means, g_quats, g_scales):
    n = means.shape[0]
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        m = np.empty((3, 3))
        wm = np.empty((3, 3))
        sig = np.empty((3, 3))
        gsig = np.empty((3, 3))
        tmp = np.empty((3, 3))
        gm = np.empty((3, 3))
        gp = np.empty(3)
        t0 = np.empty(3)
        t1 = np.empty(3)
        r = np.empty((3, 3))
        gr = np.empty((3, 3))
        for g in range(chunk * _CHUNK, min(n, (chunk + 1) * _CHUNK)):
            _project_bwd_one(g, means, quats, scales, viewmats, ks, width, height, eps2d,
                             near, far, v_means2d, v_depths, v_conics, v_comps, g_means,
                             g_quats, g_scales, m, wm, sig, gsig, tmp, gm, gp, t0, t1, r, gr)


class _ProjectCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, means: Tensor, quats: Tensor, scales: Tensor, viewmats: Tensor,
                Ks: Tensor, width: int, height: int, eps2d: float, near: float, far: float,
                radius_clip: float, calc_comps: bool) -> tuple[Tensor, ...]:
        _set_threads()
        dtype = means.dtype
        n_cams, n = viewmats.shape[0], means.shape[0]
        # the kernels work in float64 (inputs are O(N)); outputs are cast back
        arrs = [_np(t.double()) for t in (means, quats, scales, viewmats, Ks)]
        radii = torch.empty(n_cams, n, dtype=torch.int32)
        means2d = torch.empty(n_cams, n, 2, dtype=dtype)
        depths = torch.empty(n_cams, n, dtype=dtype)
        conics = torch.empty(n_cams, n, 3, dtype=dtype)
        comps = torch.empty((n_cams, n) if calc_comps else (0, 0), dtype=dtype)
        _project_fwd(*arrs, width, height, eps2d, near, far, radius_clip, radii.numpy(),
                     means2d.numpy(), depths.numpy(), conics.numpy(), comps.numpy())
        ctx.arrs = arrs
        ctx.dtype = dtype
        ctx.args = (width, height, eps2d, near, far)
        ctx.mark_non_differentiable(radii)
        return radii, means2d, depths, conics, comps

    @staticmethod
    def backward(ctx: Any, _g_radii: Tensor | None, g_means2d: Tensor, g_depths: Tensor,
                 g_conics: Tensor, g_comps: Tensor | None) -> tuple[Tensor | None, ...]:
        _set_threads()
        dtype = ctx.dtype
        n = ctx.arrs[0].shape[0]
        g_means = np.zeros((n, 3))
        g_quats = np.zeros((n, 4))
        g_scales = np.zeros((n, 3))
        v_comps = (np.zeros((0, 0)) if g_comps is None or g_comps.numel() == 0
                   else _np(g_comps.double()))
        _project_bwd(*ctx.arrs, *ctx.args, _np(g_means2d.double()), _np(g_depths.double()),
                     _np(g_conics.double()), v_comps, g_means, g_quats, g_scales)
        return (torch.from_numpy(g_means).to(dtype), torch.from_numpy(g_quats).to(dtype),
                torch.from_numpy(g_scales).to(dtype)) + (None,) * 9


def project_gaussians_cpu(means: Tensor, quats: Tensor, scales: Tensor, viewmats: Tensor,
                          Ks: Tensor, width: int, height: int, eps2d: float = 0.3,
                          near_plane: float = 0.01, far_plane: float = 1e10,
                          radius_clip: float = 0.0,
                          calc_compensations: bool = False) -> tuple[Tensor, ...]:
    """Same contract as ``projection.project_gaussians`` (radii, means2d, depths, conics,
    and ``compensations`` with ``calc_compensations``); differentiable w.r.t. means, quats
    and scales (not viewmats / Ks)."""
    out = _ProjectCPU.apply(means, quats, scales, viewmats, Ks, int(width), int(height),
                            float(eps2d), float(near_plane), float(far_plane),
                            float(radius_clip), bool(calc_compensations))
    return out if calc_compensations else out[:4]
