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

def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _set_threads() -> None:
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


# ----------------------------------------------------------------------------- projection
# One Gaussian at a time in scalar float64 locals (no scratch arrays, no strided views):
# Sigma = M M^T with M = R(q) diag(s) is formed once per Gaussian, and per camera only the
# two rows T = J W that the 2D covariance T Sigma T^T needs. Array elements are read with
# np.float64(...): Numba's float() keeps a float32 a float32.


@njit(**_JIT)
def _unit_quat(q0, q1, q2, q3):
    inv = 1.0 / max(math.sqrt(q0 * q0 + q1 * q1 + q2 * q2 + q3 * q3), 1e-12)
    return q0 * inv, q1 * inv, q2 * inv, q3 * inv, inv


@njit(**_JIT)
def _rot_scale(w, x, y, z, s0, s1, s2):
    """M = R(w, x, y, z) diag(s0, s1, s2), row-major."""
    return ((1 - 2 * (y * y + z * z)) * s0, 2 * (x * y - w * z) * s1, 2 * (x * z + w * y) * s2,
            2 * (x * y + w * z) * s0, (1 - 2 * (x * x + z * z)) * s1, 2 * (y * z - w * x) * s2,
            2 * (x * z - w * y) * s0, 2 * (y * z + w * x) * s1, (1 - 2 * (x * x + y * y)) * s2)


@njit(**_JIT)
def _world_cov(m):
    """The six entries (00, 01, 02, 11, 12, 22) of M M^T."""
    return (m[0] * m[0] + m[1] * m[1] + m[2] * m[2], m[0] * m[3] + m[1] * m[4] + m[2] * m[5],
            m[0] * m[6] + m[1] * m[7] + m[2] * m[8], m[3] * m[3] + m[4] * m[4] + m[5] * m[5],
            m[3] * m[6] + m[4] * m[7] + m[5] * m[8], m[6] * m[6] + m[7] * m[7] + m[8] * m[8])


@njit(**_JIT)
def _sym_times(s, a0, a1, a2):
    """Sigma a for the symmetric Sigma given by its six entries."""
    return (s[0] * a0 + s[1] * a1 + s[2] * a2, s[1] * a0 + s[3] * a1 + s[4] * a2,
            s[2] * a0 + s[4] * a1 + s[5] * a2)


@njit(**_JIT)
def _to_camera(w, t, x, y, z):
    """Camera-space point ``W p + t`` (``w``: the rotation's rows, flat)."""
    return (w[0] * x + w[1] * y + w[2] * z + t[0], w[3] * x + w[4] * y + w[5] * z + t[1],
            w[6] * x + w[7] * y + w[8] * z + t[2])


@njit(**_JIT)
def _camera(viewmats, ks, ci, width, height):
    """Rotation rows, translation, intrinsics and the 1.3x-FOV clamp bounds of camera ci."""
    v = viewmats[ci]
    fx, fy, cx, cy = ks[ci, 0, 0], ks[ci, 1, 1], ks[ci, 0, 2], ks[ci, 1, 2]
    tan_x = 0.5 * width / fx
    tan_y = 0.5 * height / fy
    return ((v[0, 0], v[0, 1], v[0, 2], v[1, 0], v[1, 1], v[1, 2], v[2, 0], v[2, 1], v[2, 2]),
            (v[0, 3], v[1, 3], v[2, 3]), (fx, fy, cx, cy),
            (-(cx / fx + 0.3 * tan_x), (width - cx) / fx + 0.3 * tan_x,
             -(cy / fy + 0.3 * tan_y), (height - cy) / fy + 0.3 * tan_y))


@njit(**_JIT)
def _cov2d(w, sig, fx, fy, u, v, pz):
    """J W and the 2D covariance (a, b, c) = (J W) Sigma (J W)^T before the eps2d blur."""
    j00 = fx / pz
    j02 = -fx * u / pz
    j11 = fy / pz
    j12 = -fy * v / pz
    t0 = (j00 * w[0] + j02 * w[6], j00 * w[1] + j02 * w[7], j00 * w[2] + j02 * w[8])
    t1 = (j11 * w[3] + j12 * w[6], j11 * w[4] + j12 * w[7], j11 * w[5] + j12 * w[8])
    u0 = _sym_times(sig, t0[0], t0[1], t0[2])
    u1 = _sym_times(sig, t1[0], t1[1], t1[2])
    a = t0[0] * u0[0] + t0[1] * u0[1] + t0[2] * u0[2]
    b = t0[0] * u1[0] + t0[1] * u1[1] + t0[2] * u1[2]
    c = t1[0] * u1[0] + t1[1] * u1[1] + t1[2] * u1[2]
    return t0, t1, u0, u1, a, b, c


@njit(parallel=True, **_JIT)
def _project_fwd(means, quats, scales, viewmats, ks, width, height, eps2d, near, far,
                 radius_clip, radii, means2d, depths, conics, comps):
    want_comp = comps.shape[0] > 0
    for g in prange(means.shape[0]):
        qw, qx, qy, qz, _ = _unit_quat(np.float64(quats[g, 0]), np.float64(quats[g, 1]),
                                       np.float64(quats[g, 2]), np.float64(quats[g, 3]))
        s0, s1, s2 = np.float64(scales[g, 0]), np.float64(scales[g, 1]), np.float64(scales[g, 2])
        sig = _world_cov(_rot_scale(qw, qx, qy, qz, s0, s1, s2))
        x, y, z = np.float64(means[g, 0]), np.float64(means[g, 1]), np.float64(means[g, 2])
        for ci in range(viewmats.shape[0]):
            w, t, (fx, fy, cx, cy), (lxn, lxp, lyn, lyp) = _camera(viewmats, ks, ci, width,
                                                                   height)
            px, py, pz = _to_camera(w, t, x, y, z)
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
            u = min(max(px / pz, lxn), lxp)
            v = min(max(py / pz, lyn), lyp)
            a0, b, c0 = _cov2d(w, sig, fx, fy, u, v, pz)[4:]
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
            rad = math.ceil(3.0 * math.sqrt(max(0.5 * (a + c) + math.sqrt(hd * hd + b * b), 0.0)))
            # the visibility test reads the stored (output dtype) centre, as the torch path does
            mxf = means2d[ci, g, 0]
            myf = means2d[ci, g, 1]
            if mxf + rad > 0 and mxf - rad < width and myf + rad > 0 and myf - rad < height \
                    and rad > radius_clip:
                radii[ci, g] = int(rad)


@njit(parallel=True, **_JIT)
def _project_bwd(means, quats, scales, viewmats, ks, width, height, eps2d, near, far,
                 v_means2d, v_depths, v_conics, v_comps, g_means, g_quats, g_scales):
    """Gradients w.r.t. means, quats and scales, written (not accumulated) per Gaussian."""
    want_comp = v_comps.shape[0] > 0
    for g in prange(means.shape[0]):
        qw, qx, qy, qz, inv_qn = _unit_quat(np.float64(quats[g, 0]), np.float64(quats[g, 1]),
                                            np.float64(quats[g, 2]), np.float64(quats[g, 3]))
        s0, s1, s2 = np.float64(scales[g, 0]), np.float64(scales[g, 1]), np.float64(scales[g, 2])
        m = _rot_scale(qw, qx, qy, qz, s0, s1, s2)
        sig = _world_cov(m)
        x, y, z = np.float64(means[g, 0]), np.float64(means[g, 1]), np.float64(means[g, 2])
        # world-space gradients summed over cameras: mean, and the symmetric Sigma
        gx = gy = gz = 0.0
        gs00 = gs01 = gs02 = gs11 = gs12 = gs22 = 0.0
        for ci in range(viewmats.shape[0]):
            w, t, (fx, fy, cx, cy), (lxn, lxp, lyn, lyp) = _camera(viewmats, ks, ci, width,
                                                                   height)
            px, py, pz = _to_camera(w, t, x, y, z)
            g_px = 0.0
            g_py = 0.0
            g_pz = np.float64(v_depths[ci, g])
            if pz > near and pz < far:
                u_raw = px / pz
                v_raw = py / pz
                u = min(max(u_raw, lxn), lxp)
                v = min(max(v_raw, lyn), lyp)
                t0, t1, u0, u1, a0, b, c0 = _cov2d(w, sig, fx, fy, u, v, pz)
                a = a0 + eps2d
                c = c0 + eps2d
                det = a * c - b * b
                if det > 0:
                    # conic = (c, -b, a) / det
                    k0 = np.float64(v_conics[ci, g, 0])
                    k1 = np.float64(v_conics[ci, g, 1])
                    k2 = np.float64(v_conics[ci, g, 2])
                    g_det = -(k0 * c - k1 * b + k2 * a) / (det * det)
                    ga = k2 / det + g_det * c
                    gc = k0 / det + g_det * a
                    h = 0.5 * (-k1 / det - 2.0 * g_det * b)  # off-diagonal of the 2x2 gradient
                    det0 = a0 * c0 - b * b
                    if want_comp and det0 > 0:
                        # comp = sqrt(det0 / det): d comp = comp / 2 (d det0 / det0 - d det / det)
                        gk = 0.5 * np.float64(v_comps[ci, g]) * math.sqrt(det0 / det)
                        ga += gk * (c0 / det0 - c / det)
                        gc += gk * (a0 / det0 - a / det)
                        h += gk * b * (1.0 / det - 1.0 / det0)
                    # cov2d = T Sigma T^T, G = [[ga, h], [h, gc]]: gSigma += T^T G T
                    r0 = (ga * t0[0] + h * t1[0], ga * t0[1] + h * t1[1], ga * t0[2] + h * t1[2])
                    r1 = (h * t0[0] + gc * t1[0], h * t0[1] + gc * t1[1], h * t0[2] + gc * t1[2])
                    gs00 += t0[0] * r0[0] + t1[0] * r1[0]
                    gs01 += t0[0] * r0[1] + t1[0] * r1[1]
                    gs02 += t0[0] * r0[2] + t1[0] * r1[2]
                    gs11 += t0[1] * r0[1] + t1[1] * r1[1]
                    gs12 += t0[1] * r0[2] + t1[1] * r1[2]
                    gs22 += t0[2] * r0[2] + t1[2] * r1[2]
                    # gT = 2 G T Sigma; T0 = j00 W0 + j02 W2, T1 = j11 W1 + j12 W2
                    e0 = (2.0 * (ga * u0[0] + h * u1[0]), 2.0 * (ga * u0[1] + h * u1[1]),
                          2.0 * (ga * u0[2] + h * u1[2]))
                    e1 = (2.0 * (h * u0[0] + gc * u1[0]), 2.0 * (h * u0[1] + gc * u1[1]),
                          2.0 * (h * u0[2] + gc * u1[2]))
                    g_j00 = e0[0] * w[0] + e0[1] * w[1] + e0[2] * w[2]
                    g_j02 = e0[0] * w[6] + e0[1] * w[7] + e0[2] * w[8]
                    g_j11 = e1[0] * w[3] + e1[1] * w[4] + e1[2] * w[5]
                    g_j12 = e1[0] * w[6] + e1[1] * w[7] + e1[2] * w[8]
                    # means2d = (fx px / pz + cx, fy py / pz + cy)
                    gmx = np.float64(v_means2d[ci, g, 0])
                    gmy = np.float64(v_means2d[ci, g, 1])
                    iz = 1.0 / pz
                    iz2 = iz * iz
                    g_px += gmx * fx * iz
                    g_py += gmy * fy * iz
                    g_pz += -(gmx * fx * px + gmy * fy * py) * iz2
                    # J = [[fx/pz, 0, -fx u/pz], [0, fy/pz, -fy v/pz]]
                    g_pz += (-g_j00 * fx + g_j02 * fx * u - g_j11 * fy + g_j12 * fy * v) * iz2
                    g_u = -g_j02 * fx * iz
                    g_v = -g_j12 * fy * iz
                    if lxn < u_raw < lxp:
                        g_px += g_u * iz
                        g_pz += -g_u * px * iz2
                    if lyn < v_raw < lyp:
                        g_py += g_v * iz
                        g_pz += -g_v * py * iz2
            gx += w[0] * g_px + w[3] * g_py + w[6] * g_pz
            gy += w[1] * g_px + w[4] * g_py + w[7] * g_pz
            gz += w[2] * g_px + w[5] * g_py + w[8] * g_pz
        g_means[g, 0] = gx
        g_means[g, 1] = gy
        g_means[g, 2] = gz
        # Sigma = M M^T: gM = 2 gSigma M; M = R diag(s)
        gsig = (gs00, gs01, gs02, gs11, gs12, gs22)
        gm0 = _sym_times(gsig, m[0], m[3], m[6])  # column 0 of gSigma M
        gm1 = _sym_times(gsig, m[1], m[4], m[7])
        gm2 = _sym_times(gsig, m[2], m[5], m[8])
        r = _rot_scale(qw, qx, qy, qz, 1.0, 1.0, 1.0)
        g_scales[g, 0] = 2.0 * (gm0[0] * r[0] + gm0[1] * r[3] + gm0[2] * r[6])
        g_scales[g, 1] = 2.0 * (gm1[0] * r[1] + gm1[1] * r[4] + gm1[2] * r[7])
        g_scales[g, 2] = 2.0 * (gm2[0] * r[2] + gm2[1] * r[5] + gm2[2] * r[8])
        # gR_ij = gM_ij s_j (row i, column j)
        r00, r10, r20 = 2.0 * gm0[0] * s0, 2.0 * gm0[1] * s0, 2.0 * gm0[2] * s0
        r01, r11, r21 = 2.0 * gm1[0] * s1, 2.0 * gm1[1] * s1, 2.0 * gm1[2] * s1
        r02, r12, r22 = 2.0 * gm2[0] * s2, 2.0 * gm2[1] * s2, 2.0 * gm2[2] * s2
        gw = 2 * (-qz * r01 + qy * r02 + qz * r10 - qx * r12 - qy * r20 + qx * r21)
        gqx = 2 * (qy * r01 + qz * r02 + qy * r10 - 2 * qx * r11 - qw * r12 + qz * r20
                   + qw * r21 - 2 * qx * r22)
        gqy = 2 * (-2 * qy * r00 + qx * r01 + qw * r02 + qx * r10 + qz * r12 - qw * r20
                   + qz * r21 - 2 * qy * r22)
        gqz = 2 * (-2 * qz * r00 - qw * r01 + qx * r02 + qw * r10 - 2 * qz * r11 + qy * r12
                   + qx * r20 + qy * r21)
        dot = qw * gw + qx * gqx + qy * gqy + qz * gqz
        g_quats[g, 0] = (gw - qw * dot) * inv_qn
        g_quats[g, 1] = (gqx - qx * dot) * inv_qn
        g_quats[g, 2] = (gqy - qy * dot) * inv_qn
        g_quats[g, 3] = (gqz - qz * dot) * inv_qn


class _ProjectCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, means: Tensor, quats: Tensor, scales: Tensor, viewmats: Tensor,
                Ks: Tensor, width: int, height: int, eps2d: float, near: float, far: float,
                radius_clip: float, calc_comps: bool) -> tuple[Tensor, ...]:
        _set_threads()
        dtype = means.dtype
        n_cams, n = viewmats.shape[0], means.shape[0]
        # inputs are read in their own dtype and promoted to float64 per Gaussian inside
        # the kernels; the outputs are written in the inputs' dtype
        gauss = [t.detach().to(dtype).contiguous() for t in (means, quats, scales)]
        cams = [_np(t.double()) for t in (viewmats, Ks)]
        radii = torch.empty(n_cams, n, dtype=torch.int32)
        means2d = torch.empty(n_cams, n, 2, dtype=dtype)
        depths = torch.empty(n_cams, n, dtype=dtype)
        conics = torch.empty(n_cams, n, 3, dtype=dtype)
        comps = torch.empty((n_cams, n) if calc_comps else (0, 0), dtype=dtype)
        _project_fwd(*(t.numpy() for t in gauss), *cams, width, height, eps2d, near, far,
                     radius_clip, radii.numpy(), means2d.numpy(), depths.numpy(),
                     conics.numpy(), comps.numpy())
        ctx.save_for_backward(*gauss)
        ctx.cams = cams
        ctx.args = (width, height, eps2d, near, far)
        ctx.mark_non_differentiable(radii)
        return radii, means2d, depths, conics, comps

    @staticmethod
    def backward(ctx: Any, _g_radii: Tensor | None, g_means2d: Tensor, g_depths: Tensor,
                 g_conics: Tensor, g_comps: Tensor | None) -> tuple[Tensor | None, ...]:
        _set_threads()
        means, quats, scales = ctx.saved_tensors
        dtype = means.dtype
        grads = [torch.empty(t.shape, dtype=dtype) for t in (means, quats, scales)]
        v_comps = (np.zeros((0, 0), dtype=np.dtype(str(dtype).split('.')[-1]))
                   if g_comps is None or g_comps.numel() == 0 else _np(g_comps.to(dtype)))
        _project_bwd(means.numpy(), quats.numpy(), scales.numpy(), *ctx.cams, *ctx.args,
                     _np(g_means2d.to(dtype)), _np(g_depths.to(dtype)),
                     _np(g_conics.to(dtype)), v_comps, *(t.numpy() for t in grads))
        return tuple(grads) + (None,) * 9


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
