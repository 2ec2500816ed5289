"""Numba kernels of the multiresolution hash encoding (``nerfreg.ops.hash_encoding``).

Level ``l`` has a grid of ``res[l] + 1`` vertices per axis over the unit cube. A vertex
``(i, j, k)`` reads row ``i + j (r+1) + k (r+1)^2`` of the level's table when the level is
dense (``(r+1)^3 <= T``), else row ``(i ^ j*P1 ^ k*P2) & (T-1)`` (instant-ngp's spatial
hash; ``T`` is a power of two, so the int64 products give the uint32 result's low bits).
A point interpolates its cell's 8 vertices trilinearly. The forward is parallel over points;
the backward (a scatter-add into the tables) is parallel over levels, so no two threads
write one row and the sum order does not depend on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_JIT = dict(cache=True, nogil=True, fastmath={'nsz', 'arcp'})
PRIME_Y = 2654435761
PRIME_Z = 805459861


@njit(inline='always', **_JIT)
def _row(ix, iy, iz, r, table_size, dense):
    if dense:
        n = r + 1
        return ix + iy * n + iz * n * n
    return (ix ^ (iy * PRIME_Y) ^ (iz * PRIME_Z)) & (table_size - 1)


@njit(inline='always', **_JIT)
def _cell(p, r):
    """Lower vertex and fraction of coordinate ``p`` (already scaled by ``r``)."""
    i = int(np.floor(p))
    if i < 0:
        i = 0
    elif i > r - 1:
        i = r - 1
    return i, p - i


@njit(parallel=True, **_JIT)
def hash_forward(x, tables, res, resf, dense, out):
    """``out[n, l*F + f] = sum_corners w * tables[l, row, f]`` for ``x [N,3]`` in [0,1].

    Level-major: one level's table stays in cache while every point reads it. Two features
    per level (instant-ngp's choice) take a path that sums in registers; the sums are the
    same, in the same order."""
    n_pts = x.shape[0]
    n_lvl, table_size, n_feat = tables.shape
    one = 1.0
    for lv in range(n_lvl):
        r = res[lv]
        rf = resf[lv]
        dn = dense[lv]
        base = lv * n_feat
        tab = tables[lv]
        for n in prange(n_pts):
            ix, fx = _cell(x[n, 0] * rf, r)
            iy, fy = _cell(x[n, 1] * rf, r)
            iz, fz = _cell(x[n, 2] * rf, r)
            if n_feat == 2:
                a0 = 0.0
                a1 = 0.0
                for c in range(8):
                    cx, cy, cz = c & 1, (c >> 1) & 1, (c >> 2) & 1
                    w = ((fx if cx else one - fx) * (fy if cy else one - fy)
                         * (fz if cz else one - fz))
                    row = _row(ix + cx, iy + cy, iz + cz, r, table_size, dn)
                    a0 += w * tab[row, 0]
                    a1 += w * tab[row, 1]
                out[n, base] = a0
                out[n, base + 1] = a1
                continue
            for f in range(n_feat):
                out[n, base + f] = 0.0
            for c in range(8):
                cx, cy, cz = c & 1, (c >> 1) & 1, (c >> 2) & 1
                w = ((fx if cx else one - fx) * (fy if cy else one - fy)
                     * (fz if cz else one - fz))
                row = _row(ix + cx, iy + cy, iz + cz, r, table_size, dn)
                for f in range(n_feat):
                    out[n, base + f] += w * tab[row, f]


@njit(parallel=True, **_JIT)
def hash_backward(x, grad_out, res, resf, dense, grad_tables):
    """``grad_tables[l, row, f] += w * grad_out[n, l*F + f]`` (parallel over levels).
    A point's coordinates and output gradient are read into registers once (the stores
    into the tables would otherwise force them to be re-read for every corner)."""
    n_pts = x.shape[0]
    n_lvl, table_size, n_feat = grad_tables.shape
    one = 1.0
    for lv in prange(n_lvl):
        r = res[lv]
        rf = resf[lv]
        dn = dense[lv]
        base = lv * n_feat
        gt = grad_tables[lv]
        for n in range(n_pts):
            ix, fx = _cell(x[n, 0] * rf, r)
            iy, fy = _cell(x[n, 1] * rf, r)
            iz, fz = _cell(x[n, 2] * rf, r)
            if n_feat == 2:
                g0 = grad_out[n, base]
                g1 = grad_out[n, base + 1]
                for c in range(8):
                    cx, cy, cz = c & 1, (c >> 1) & 1, (c >> 2) & 1
                    w = ((fx if cx else one - fx) * (fy if cy else one - fy)
                         * (fz if cz else one - fz))
                    row = _row(ix + cx, iy + cy, iz + cz, r, table_size, dn)
                    gt[row, 0] += w * g0
                    gt[row, 1] += w * g1
                continue
            for c in range(8):
                cx, cy, cz = c & 1, (c >> 1) & 1, (c >> 2) & 1
                w = ((fx if cx else one - fx) * (fy if cy else one - fy)
                     * (fz if cz else one - fz))
                row = _row(ix + cx, iy + cy, iz + cz, r, table_size, dn)
                for f in range(n_feat):
                    gt[row, f] += w * grad_out[n, base + f]


@njit(parallel=True, **_JIT)
def hash_backward_x(x, tables, grad_out, res, resf, dense, grad_x):
    """``grad_x[n] = sum_l,corners (grad_out[n, l] . tables[l, row]) * dw/dx`` (parallel over
    points): the gradient of the trilinear weights, for inputs that need one (points that
    move with a camera being refined)."""
    n_pts = x.shape[0]
    n_lvl, table_size, n_feat = tables.shape
    one = 1.0
    for n in prange(n_pts):
        gx = 0.0
        gy = 0.0
        gz = 0.0
        for lv in range(n_lvl):
            r = res[lv]
            rf = resf[lv]
            base = lv * n_feat
            ix, fx = _cell(x[n, 0] * rf, r)
            iy, fy = _cell(x[n, 1] * rf, r)
            iz, fz = _cell(x[n, 2] * rf, r)
            for c in range(8):
                cx, cy, cz = c & 1, (c >> 1) & 1, (c >> 2) & 1
                row = _row(ix + cx, iy + cy, iz + cz, r, table_size, dense[lv])
                dot = 0.0
                for f in range(n_feat):
                    dot += grad_out[n, base + f] * tables[lv, row, f]
                wx = fx if cx else one - fx
                wy = fy if cy else one - fy
                wz = fz if cz else one - fz
                sx = rf if cx else -rf
                sy = rf if cy else -rf
                sz = rf if cz else -rf
                gx += dot * sx * wy * wz
                gy += dot * wx * sy * wz
                gz += dot * wx * wy * sz
        grad_x[n, 0] = gx
        grad_x[n, 1] = gy
        grad_x[n, 2] = gz
