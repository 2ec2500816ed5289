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
def _grid_coords(ox, oy, oz, dx, dy, dz, t, mode, lo, hi, center, radius):
    """Normalised grid coordinates ``(u, v, w)`` of the point at ``t``, and its distance
    ``n`` from the contraction centre in radii (0 in 'aabb' mode)."""
    x = ox + t * dx
    y = oy + t * dy
    z = oz + t * dz
    if mode == 0:
        return ((x - lo[0]) / (hi[0] - lo[0]), (y - lo[1]) / (hi[1] - lo[1]),
                (z - lo[2]) / (hi[2] - lo[2]), 0.0)
    x = (x - center[0]) / radius
    y = (y - center[1]) / radius
    z = (z - center[2]) / radius
    n = math.sqrt(x * x + y * y + z * z)
    if n > 1.0:
        k = (2.0 - 1.0 / n) / n
        x *= k
        y *= k
        z *= k
    return (x + 2.0) * 0.25, (y + 2.0) * 0.25, (z + 2.0) * 0.25, n


@njit(**_JIT)
def _axis_exit(o, d, b0, b1, lo, hi, mode, center, radius):
    """Largest ``t`` of the ray ``o + t d`` (one axis) inside the slab ``[b0, b1]`` of
    normalised grid coordinates, through the affine part of the grid map."""
    if mode == 0:
        lo_w = lo + b0 * (hi - lo)
        hi_w = lo + b1 * (hi - lo)
    else:
        lo_w = center + radius * (4.0 * b0 - 2.0)
        hi_w = center + radius * (4.0 * b1 - 2.0)
    if d > 0.0:
        return (hi_w - o) / d
    if d < 0.0:
        return (lo_w - o) / d
    return math.inf


@njit(**_JIT)
def _skip_until(ox, oy, oz, dx, dy, dz, tm, u, v, w, i, j, k, size, res, mode, lo, hi,
                center, radius, n):
    """A ``t`` before which every point of the ray past ``tm`` lies in the same empty box
    (``size^3`` cells from cell ``i, j, k``) as the point at ``tm`` (grid coordinates
    ``u, v, w``; ``n``: its distance from the contraction centre in radii). Conservative:
    a margin keeps rounding from ever skipping a point of a neighbouring cell."""
    b0u, b1u = i / res, (i + size) / res
    b0v, b1v = j / res, (j + size) / res
    b0w, b1w = k / res, (k + size) / res
    if mode == 0 or n <= 1.0:
        end = min(_axis_exit(ox, dx, b0u, b1u, lo[0], hi[0], mode, center[0], radius),
                  _axis_exit(oy, dy, b0v, b1v, lo[1], hi[1], mode, center[1], radius),
                  _axis_exit(oz, dz, b0w, b1w, lo[2], hi[2], mode, center[2], radius))
        if mode == 1:  # the map is affine only inside the unit ball
            px, py, pz = ox - center[0], oy - center[1], oz - center[2]
            dd = dx * dx + dy * dy + dz * dz
            b = (px * dx + py * dy + pz * dz) / dd
            c = (px * px + py * py + pz * pz - radius * radius) / dd
            disc = b * b - c
            end = min(end, -b + math.sqrt(disc) if disc > 0.0 else tm)
        return end - 1e-9 * (1.0 + abs(end))
    # contracted shell: the contraction's Jacobian has singular values 1/n^2 (radial)
    # and (2n - 1)/n^2 (tangential), both <= 1 and falling with n; a ray moving outwards
    # keeps n growing, so (2n - 1)/n^2 bounds how fast its image moves
    gap = min(u - b0u, b1u - u, v - b0v, b1v - v, w - b0w, b1w - w)
    if gap <= 0.0:
        return tm
    dn = math.sqrt(dx * dx + dy * dy + dz * dz)
    outward = ((ox + tm * dx - center[0]) * dx + (oy + tm * dy - center[1]) * dy
               + (oz + tm * dz - center[2]) * dz) >= 0.0
    lip = (2.0 * n - 1.0) / (n * n) if outward else 1.0
    return tm + (1.0 - 1e-6) * 4.0 * gap * radius / (lip * dn)


@njit(**_JIT)
def _step(ox, oy, oz, dx, dy, dz, t, cone, dt_min, dt_max, shell, center, radius):
    """Step length at ``t`` (``ray_march``'s rule: cone steps, and at least ``shell n^2``
    outside the contraction's unit ball when ``shell > 0``)."""
    dt = t * cone
    dt = dt_min if dt < dt_min else (dt_max if dt > dt_max else dt)
    if shell > 0.0:
        x = ox + t * dx - center[0]
        y = oy + t * dy - center[1]
        z = oz + t * dz - center[2]
        n2 = (x * x + y * y + z * z) * (1.0 / (radius * radius))
        if n2 > 1.0 and shell * n2 > dt:
            dt = shell * n2
    return dt


@njit(**_JIT)
def _march_one(r, o, d, t_near, t_far, jitter, grid, coarse, cf, res, mode, lo, hi, center,
               radius, dt_min, dt_max, cone, shell, max_samples, t0_out, t1_out, start,
               write):
    """March ray ``r``: the intervals whose midpoint lies in an occupied cell. Where the
    midpoint's cell is empty the following steps are taken without looking the grid up, as
    long as their midpoints stay in that cell (or in its empty ``cf^3`` block of
    ``coarse``; ``cf = 0``: no skipping): the same steps and samples as looking every one
    up."""
    ox, oy, oz = o[r, 0], o[r, 1], o[r, 2]
    dx, dy, dz = d[r, 0], d[r, 1], d[r, 2]
    cres = res // max(cf, 1)
    t = t_near[r]
    far = t_far[r]
    first = True
    count = 0
    # every step is dt_min long
    fixed = far * cone <= dt_min and dt_min <= dt_max and shell <= 0.0
    while t < far and count < max_samples:
        dt = _step(ox, oy, oz, dx, dy, dz, t, cone, dt_min, dt_max, shell, center, radius)
        if first:
            t += jitter[r] * dt
            first = False
            if t >= far:
                break
            dt = _step(ox, oy, oz, dx, dy, dz, t, cone, dt_min, dt_max, shell, center,
                       radius)  # the first step's length at its jittered start
        tm = t + 0.5 * dt
        u, v, w, n = _grid_coords(ox, oy, oz, dx, dy, dz, tm, mode, lo, hi, center, radius)
        if u < 0.0 or v < 0.0 or w < 0.0 or u >= 1.0 or v >= 1.0 or w >= 1.0:
            t += dt
            continue
        i, j, k = int(u * res), int(v * res), int(w * res)
        if grid[(i * res + j) * res + k]:
            if write:
                t0_out[start + count] = t
                t1_out[start + count] = t + dt
            count += 1
            t += dt
            continue
        if cf == 0:  # skipping off: look every step up
            t += dt
            continue
        size = 1
        if coarse[((i // cf) * cres + j // cf) * cres + k // cf] == 0:
            size = cf
        until = _skip_until(ox, oy, oz, dx, dy, dz, tm, u, v, w, (i // size) * size,
                            (j // size) * size, (k // size) * size, size, res, mode, lo,
                            hi, center, radius, n)
        t += dt
        if fixed:  # the same steps as below, without the dependency on t's size
            half = 0.5 * dt_min
            while t < far and t + half < until:
                t += dt_min
            continue
        while t < far:
            dt = _step(ox, oy, oz, dx, dy, dz, t, cone, dt_min, dt_max, shell, center,
                       radius)
            if t + 0.5 * dt >= until:
                break
            t += dt
    return count


@njit(parallel=True, **_JIT)
def march_count(o, d, t_near, t_far, jitter, grid, coarse, cf, res, mode, lo, hi, center,
                radius, dt_min, dt_max, cone, shell, max_samples, counts, dummy):
    for r in prange(o.shape[0]):
        counts[r] = _march_one(r, o, d, t_near, t_far, jitter, grid, coarse, cf, res, mode,
                               lo, hi, center, radius, dt_min, dt_max, cone, shell,
                               max_samples, dummy, dummy, 0, False)


@njit(parallel=True, **_JIT)
def march_fill(o, d, t_near, t_far, jitter, grid, coarse, cf, res, mode, lo, hi, center,
               radius, dt_min, dt_max, cone, shell, max_samples, offsets, t0_out, t1_out):
    for r in prange(o.shape[0]):
        _march_one(r, o, d, t_near, t_far, jitter, grid, coarse, cf, res, mode, lo, hi,
                   center, radius, dt_min, dt_max, cone, shell, max_samples, t0_out, t1_out,
                   offsets[r], True)
