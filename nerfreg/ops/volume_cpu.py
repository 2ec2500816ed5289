"""Numba kernels of packed volume rendering (``nerfreg.ops.volume_rendering``).

Samples are packed ray by ray: the samples of ray ``r`` are ``offsets[r]:offsets[r+1]``,
with intervals ``[t0, t1)``. Per ray, front to back: ``alpha = 1 - exp(-sigma (t1 - t0))``,
``w = T alpha``, ``T <- T (1 - alpha)``; compositing stops before the first sample whose
incoming transmittance is below ``t_min`` (early ray termination). Outputs: colour
``sum w c``, depth ``sum w (t0 + t1) / 2`` and opacity ``sum w``; ``n_used`` counts the
composited samples (the backward visits only those). Parallel over rays.
"""

from __future__ import annotations

import math

from numba import njit, prange

_JIT = dict(cache=True, nogil=True, fastmath={'nsz', 'arcp'})


@njit(parallel=True, **_JIT)
def composite_forward(sigmas, rgbs, t0, t1, offsets, t_min, out_rgb, out_depth, out_acc,
                      n_used):
    n_rays = offsets.shape[0] - 1
    for r in prange(n_rays):
        trans = 1.0
        c0 = c1 = c2 = d = a = 0.0
        s_end = offsets[r + 1]
        s = offsets[r]
        while s < s_end:
            if trans < t_min:
                break
            tau = sigmas[s] * (t1[s] - t0[s])
            alpha = 1.0 - math.exp(-tau)
            w = trans * alpha
            c0 += w * rgbs[s, 0]
            c1 += w * rgbs[s, 1]
            c2 += w * rgbs[s, 2]
            d += w * 0.5 * (t0[s] + t1[s])
            a += w
            trans *= 1.0 - alpha
            s += 1
        out_rgb[r, 0] = c0
        out_rgb[r, 1] = c1
        out_rgb[r, 2] = c2
        out_depth[r] = d
        out_acc[r] = a
        n_used[r] = s - offsets[r]


@njit(parallel=True, **_JIT)
def composite_backward(sigmas, rgbs, t0, t1, offsets, n_used, out_rgb, out_depth, out_acc,
                       g_rgb, g_depth, g_acc, g_sigmas, g_rgbs):
    """``dL/dsigma_i = dt_i (T_{i+1} s_i - sum_{j>i} w_j s_j)`` with the per-sample score
    ``s_j = g_rgb . c_j + g_depth t_j + g_acc``; the suffix sum is the ray total minus the
    running prefix. ``dL/dc_i = w_i g_rgb``."""
    n_rays = offsets.shape[0] - 1
    for r in prange(n_rays):
        total = (g_rgb[r, 0] * out_rgb[r, 0] + g_rgb[r, 1] * out_rgb[r, 1]
                 + g_rgb[r, 2] * out_rgb[r, 2] + g_depth[r] * out_depth[r]
                 + g_acc[r] * out_acc[r])
        prefix = 0.0
        trans = 1.0
        start = offsets[r]
        for s in range(start, start + n_used[r]):
            dt = t1[s] - t0[s]
            alpha = 1.0 - math.exp(-sigmas[s] * dt)
            w = trans * alpha
            score = (g_rgb[r, 0] * rgbs[s, 0] + g_rgb[r, 1] * rgbs[s, 1]
                     + g_rgb[r, 2] * rgbs[s, 2] + g_depth[r] * 0.5 * (t0[s] + t1[s])
                     + g_acc[r])
            prefix += w * score
            trans *= 1.0 - alpha
            g_sigmas[s] = dt * (trans * score - (total - prefix))
            g_rgbs[s, 0] = w * g_rgb[r, 0]
            g_rgbs[s, 1] = w * g_rgb[r, 1]
            g_rgbs[s, 2] = w * g_rgb[r, 2]


@njit(**_JIT)
def _cell_of(ox, oy, oz, dx, dy, dz, t, mode, lo, hi, center, radius, res):
    """Flat occupancy cell of the point at ``t`` (-1 outside the grid)."""
    x = ox + t * dx
    y = oy + t * dy
    z = oz + t * dz
    if mode == 0:
        u = (x - lo[0]) / (hi[0] - lo[0])
        v = (y - lo[1]) / (hi[1] - lo[1])
        w = (z - lo[2]) / (hi[2] - lo[2])
    else:
        x = (x - center[0]) / radius
        y = (y - center[1]) / radius
        z = (z - center[2]) / radius
        n = math.sqrt(x * x + y * y + z * z)
        if n > 1.0:
            k = (2.0 - 1.0 / n) / n
            x *= k
            y *= k
            z *= k
        u = (x + 2.0) * 0.25
        v = (y + 2.0) * 0.25
        w = (z + 2.0) * 0.25
    if u < 0.0 or v < 0.0 or w < 0.0 or u >= 1.0 or v >= 1.0 or w >= 1.0:
        return -1
    return (int(u * res) * res + int(v * res)) * res + int(w * res)


@njit(**_JIT)
def _march_one(r, o, d, t_near, t_far, jitter, grid, res, mode, lo, hi, center, radius,
               dt_min, dt_max, cone, max_samples, t0_out, t1_out, start, write):
    ox, oy, oz = o[r, 0], o[r, 1], o[r, 2]
    dx, dy, dz = d[r, 0], d[r, 1], d[r, 2]
    t = t_near[r]
    first = True
    count = 0
    while t < t_far[r] and count < max_samples:
        dt = t * cone
        dt = dt_min if dt < dt_min else (dt_max if dt > dt_max else dt)
        if first:
            t += jitter[r] * dt
            first = False
            if t >= t_far[r]:
                break
        cell = _cell_of(ox, oy, oz, dx, dy, dz, t + 0.5 * dt, mode, lo, hi, center, radius,
                        res)
        if cell >= 0 and grid[cell]:
            if write:
                t0_out[start + count] = t
                t1_out[start + count] = t + dt
            count += 1
        t += dt
    return count


@njit(parallel=True, **_JIT)
def march_count(o, d, t_near, t_far, jitter, grid, res, mode, lo, hi, center, radius,
                dt_min, dt_max, cone, max_samples, counts, dummy):
    for r in prange(o.shape[0]):
        counts[r] = _march_one(r, o, d, t_near, t_far, jitter, grid, res, mode, lo, hi,
                               center, radius, dt_min, dt_max, cone, max_samples, dummy,
                               dummy, 0, False)


@njit(parallel=True, **_JIT)
def march_fill(o, d, t_near, t_far, jitter, grid, res, mode, lo, hi, center, radius,
               dt_min, dt_max, cone, max_samples, offsets, t0_out, t1_out):
    for r in prange(o.shape[0]):
        _march_one(r, o, d, t_near, t_far, jitter, grid, res, mode, lo, hi, center, radius,
                   dt_min, dt_max, cone, max_samples, t0_out, t1_out, offsets[r], True)
