"""Numba kernels behind ``nerfreg.ops.rasterize_cpu`` (tile binning, forward, backward).

All arrays are NumPy views of CPU tensors. Gaussians are flattened over cameras
(``g = camera * N + n``) and tiles over cameras (``t = camera * tiles_x * tiles_y + ty *
tiles_x + tx``). Every kernel is generic in the float dtype (float32 for training, float64
for finite differences); the numeric constants arrive in ``consts`` so that comparisons and
clamps happen in the input dtype, exactly as in the torch backend:

    consts = [alpha_min (1/255), alpha_max (0.99), t_min (1e-4), 0.5, tile_size]

Work inside a tile is Gaussian-major (CUDA 3DGS is pixel-parallel): for every Gaussian of
the depth-sorted tile list only the pixels where it can reach ``alpha >= alpha_min`` are
visited, row by row, using a conservative bound of the ellipse ``sigma <= log(o / alpha_min)``.
Pixels outside that set provably get ``alpha < alpha_min`` and would be skipped anyway, so
the result is identical to evaluating every pixel of the tile.

The backward writes one gradient row per tile intersection (no shared writes between
tiles, so no races and a result independent of the thread count) and a second parallel
pass sums them per Gaussian through a Gaussian -> intersection index.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# no 'contract' (FMA) and no 'reassoc': sigma, alpha and T must round like the torch backend
_FASTMATH = {'nsz', 'arcp'}
_JIT = dict(cache=True, nogil=True, fastmath=_FASTMATH)

_PIX_SLACK = 1e-3  # pixels of slack added to the row bounds (computed in float64)


@njit(parallel=True, **_JIT)
def prepare(means2d, conics, opacities, radii_f, consts, tiles_x, tiles_y, width, height):
    """Per-Gaussian tile rectangle and pixel bound.

    Args:
        means2d ``[G, 2]``, conics ``[G, 3]``, opacities ``[G]``, radii_f ``[G]`` (radii in
        the float dtype), consts (see module doc).
    Returns:
        ``rect [G, 4]`` int64 (tx0, tx1, ty0, ty1; half-open, the torch backend's rule),
        ``count [G]`` int64 (tiles touched; 0 when radius is 0), ``smax [G]`` float64: the
        conservative sigma limit (``< 0``: never visible; ``inf``: conic not positive
        definite, visit every pixel), ``box [G, 4]`` int64 inclusive pixel bounds
        (x0, x1, y0, y1) of the ellipse ``sigma <= smax`` (whole image when ``smax`` is inf).
    """
    n = means2d.shape[0]
    rect = np.zeros((n, 4), dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    smax = np.full(n, -1.0)
    box = np.zeros((n, 4), dtype=np.int64)
    alpha_min = consts[0]
    ts = consts[4]
    for g in prange(n):
        r = radii_f[g]
        if not r > 0:
            continue
        mx = means2d[g, 0]
        my = means2d[g, 1]
        # same float ops and dtype as the torch backend's tile_intersections
        x0 = min(max(np.floor((mx - r) / ts), 0), tiles_x)
        x1 = min(max(np.ceil((mx + r) / ts), 0), tiles_x)
        y0 = min(max(np.floor((my - r) / ts), 0), tiles_y)
        y1 = min(max(np.ceil((my + r) / ts), 0), tiles_y)
        rect[g, 0] = int(x0)
        rect[g, 1] = int(x1)
        rect[g, 2] = int(y0)
        rect[g, 3] = int(y1)
        count[g] = (rect[g, 1] - rect[g, 0]) * (rect[g, 3] - rect[g, 2])
        o = float(opacities[g])
        if not o >= alpha_min:  # alpha = min(0.99, o * exp(-sigma)) <= o < alpha_min
            smax[g] = -1.0
            continue
        a = float(conics[g, 0])
        b = float(conics[g, 1])
        c = float(conics[g, 2])
        det = a * c - b * b
        if not (a > 0.0 and c > 0.0 and det > 0.0):
            smax[g] = np.inf
            box[g, 0] = 0
            box[g, 1] = width - 1
            box[g, 2] = 0
            box[g, 3] = height - 1
            continue
        # margin covers float32 rounding of sigma, which grows with the conic's condition
        half_tr = 0.5 * (a + c)
        root = math.sqrt(max(half_tr * half_tr - det, 0.0))
        lam_min = max(half_tr - root, 1e-300)
        cond = (half_tr + root) / lam_min
        s = math.log(o / float(alpha_min))
        s = s * (1.0 + 1e-3 + 1e-5 * cond) + 1e-3
        smax[g] = s
        hx = math.sqrt(2.0 * s * c / det)
        hy = math.sqrt(2.0 * s * a / det)
        mxf = float(mx)
        myf = float(my)
        # pixel p has centre p + 0.5; keep p with |mean - centre| <= h
        box[g, 0] = max(int(math.ceil(mxf - hx - 0.5 - _PIX_SLACK)), 0)
        box[g, 1] = min(int(math.floor(mxf + hx - 0.5 + _PIX_SLACK)), width - 1)
        box[g, 2] = max(int(math.ceil(myf - hy - 0.5 - _PIX_SLACK)), 0)
        box[g, 3] = min(int(math.floor(myf + hy - 0.5 + _PIX_SLACK)), height - 1)
    return rect, count, smax, box


@njit(**_JIT)
def bin_gaussians(order, rect, count, n_per_cam, tiles_x, tiles_y, n_cams):
    """Scatter the depth-ordered Gaussians into per-tile lists (a stable counting sort).

    Args:
        order: visible Gaussian ids (``count > 0``) in increasing (depth, id) order.
    Returns:
        ``tile_off [n_cams * tiles + 1]`` (list of tile t is ``isect_gid[tile_off[t]:
        tile_off[t+1]]``, depth-sorted), ``isect_gid [M]``, ``g_off [G + 1]`` and
        ``g_isect [M]`` (the intersections of Gaussian g are ``g_isect[g_off[g]:
        g_off[g+1]]``).
    """
    n_tiles = tiles_x * tiles_y
    tile_off = np.zeros(n_cams * n_tiles + 1, dtype=np.int64)
    g_off = np.zeros(count.shape[0] + 1, dtype=np.int64)
    for g in range(count.shape[0]):
        g_off[g + 1] = g_off[g] + count[g]
    m = g_off[-1]
    for i in range(order.shape[0]):
        g = order[i]
        base = (g // n_per_cam) * n_tiles
        for ty in range(rect[g, 2], rect[g, 3]):
            for tx in range(rect[g, 0], rect[g, 1]):
                tile_off[base + ty * tiles_x + tx + 1] += 1
    for t in range(n_cams * n_tiles):
        tile_off[t + 1] += tile_off[t]
    cursor = tile_off[:-1].copy()
    isect_gid = np.empty(m, dtype=np.int64)
    g_isect = np.empty(m, dtype=np.int64)
    for i in range(order.shape[0]):
        g = order[i]
        base = (g // n_per_cam) * n_tiles
        j = g_off[g]
        for ty in range(rect[g, 2], rect[g, 3]):
            for tx in range(rect[g, 0], rect[g, 1]):
                t = base + ty * tiles_x + tx
                pos = cursor[t]
                cursor[t] = pos + 1
                isect_gid[pos] = g
                g_isect[j] = pos
                j += 1
    return tile_off, isect_gid, g_off, g_isect


@njit(**_JIT)
def _row_span(s, a, b, c, mx, dy, bx0, bx1):
    """Inclusive pixel-column range of a row (``dy`` = mean_y - centre_y) where the
    Gaussian can have ``sigma <= s``, intersected with [bx0, bx1]; empty when lo > hi."""
    if s == np.inf:
        return bx0, bx1
    # 0.5 a dx^2 + b dy dx + 0.5 c dy^2 - s <= 0  with  dx = mx - centre_x
    qb = b * dy
    disc = qb * qb - a * (c * dy * dy - 2.0 * s)
    if disc < 0.0:
        return 1, 0
    sq = math.sqrt(disc)
    dx_lo = (-qb - sq) / a
    dx_hi = (-qb + sq) / a
    lo = max(int(math.ceil(mx - dx_hi - 0.5 - _PIX_SLACK)), bx0)
    hi = min(int(math.floor(mx - dx_lo - 0.5 + _PIX_SLACK)), bx1)
    return lo, hi


@njit(parallel=True, **_JIT)
def forward(tile_off, isect_gid, means2d, conics, colors, opacities, smax, box,
            backgrounds, consts, n_cams, width, height, tiles_x, tiles_y,
            out_color, out_alpha, out_t, out_last):
    """Front-to-back compositing of every tile.

    Writes ``out_color [C, H, W, D]`` (background included when ``backgrounds`` has rows),
    ``out_alpha [C, H, W]`` = 1 - T, ``out_t [C, H, W]`` final transmittance and
    ``out_last [C, H, W]`` the intersection index of the last composited Gaussian
    (``tile start - 1`` when none).
    """
    alpha_min = consts[0]
    alpha_max = consts[1]
    t_min = consts[2]
    half = consts[3]
    ts = int(consts[4])
    n_ch = colors.shape[1]
    n_tiles = tiles_x * tiles_y
    has_bg = backgrounds.shape[0] > 0
    one = consts[3] + consts[3]
    for tid in prange(n_cams * n_tiles):
        cam = tid // n_tiles
        ty = (tid % n_tiles) // tiles_x
        tx = (tid % n_tiles) % tiles_x
        x0 = tx * ts
        y0 = ty * ts
        x1 = min(x0 + ts, width) - 1
        y1 = min(y0 + ts, height) - 1
        bw = x1 - x0 + 1
        npix = bw * (y1 - y0 + 1)
        start = tile_off[tid]
        end = tile_off[tid + 1]
        trans = np.empty(npix, dtype=out_t.dtype)
        trans[:] = one
        acc = np.zeros((npix, n_ch), dtype=out_color.dtype)
        last = np.full(npix, start - 1, dtype=np.int64)
        done = np.zeros(npix, dtype=np.bool_)
        cx = np.empty(bw, dtype=out_t.dtype)  # pixel centres in the input dtype
        for i in range(bw):
            cx[i] = x0 + i + 0.5
        cy = np.empty(y1 - y0 + 1, dtype=out_t.dtype)
        for i in range(y1 - y0 + 1):
            cy[i] = y0 + i + 0.5
        n_done = 0
        for k in range(start, end):
            if n_done == npix:
                break
            g = isect_gid[k]
            s = smax[g]
            if s < 0.0:
                continue
            bx0 = max(box[g, 0], x0)
            bx1 = min(box[g, 1], x1)
            by0 = max(box[g, 2], y0)
            by1 = min(box[g, 3], y1)
            if bx0 > bx1 or by0 > by1:
                continue
            mx = means2d[g, 0]
            my = means2d[g, 1]
            a = conics[g, 0]
            b = conics[g, 1]
            c = conics[g, 2]
            o = opacities[g]
            for py in range(by0, by1 + 1):
                dy = my - cy[py - y0]
                lo, hi = _row_span(s, float(a), float(b), float(c), float(mx), float(dy),
                                   bx0, bx1)
                row = (py - y0) * bw - x0
                for px in range(lo, hi + 1):
                    p = row + px
                    if done[p]:
                        continue
                    dx = mx - cx[px - x0]
                    sigma = half * (a * dx * dx + c * dy * dy) + b * dx * dy
                    if sigma < 0:
                        continue
                    alpha = min(alpha_max, o * np.exp(-sigma))
                    if alpha < alpha_min:
                        continue
                    t_next = trans[p] * (one - alpha)
                    if t_next <= t_min:
                        done[p] = True
                        n_done += 1
                        continue
                    w = alpha * trans[p]
                    for d in range(n_ch):
                        acc[p, d] += colors[g, d] * w
                    trans[p] = t_next
                    last[p] = k
        for py in range(y0, y1 + 1):
            for px in range(x0, x1 + 1):
                p = (py - y0) * bw + (px - x0)
                t = trans[p]
                for d in range(n_ch):
                    v = acc[p, d]
                    if has_bg:
                        v += t * backgrounds[cam, d]
                    out_color[cam, py, px, d] = v
                out_alpha[cam, py, px] = one - t
                out_t[cam, py, px] = t
                out_last[cam, py, px] = last[p]


@njit(parallel=True, **_JIT)
def backward(tile_off, isect_gid, means2d, conics, colors, opacities, smax, box,
             backgrounds, consts, n_cams, width, height, tiles_x, tiles_y,
             fwd_t, fwd_last, grad_color, grad_alpha,
             gi_means, gi_conics, gi_colors, gi_opac, tile_grad_bg):
    """Back-to-front gradient walk of every tile (3DGS style: T is recovered by division).

    Writes one row per intersection k into ``gi_means [M, 2]``, ``gi_conics [M, 3]``,
    ``gi_colors [M, D]``, ``gi_opac [M]`` and the per-tile background gradient
    ``tile_grad_bg [C * tiles, D]``.
    """
    alpha_min = consts[0]
    alpha_max = consts[1]
    half = consts[3]
    ts = int(consts[4])
    one = consts[3] + consts[3]
    zero = consts[3] - consts[3]
    n_ch = colors.shape[1]
    n_tiles = tiles_x * tiles_y
    has_bg = backgrounds.shape[0] > 0
    for tid in prange(n_cams * n_tiles):
        cam = tid // n_tiles
        ty = (tid % n_tiles) // tiles_x
        tx = (tid % n_tiles) % tiles_x
        x0 = tx * ts
        y0 = ty * ts
        x1 = min(x0 + ts, width) - 1
        y1 = min(y0 + ts, height) - 1
        bw = x1 - x0 + 1
        npix = bw * (y1 - y0 + 1)
        start = tile_off[tid]
        end = tile_off[tid + 1]
        trans = np.empty(npix, dtype=fwd_t.dtype)
        t_fin = np.empty(npix, dtype=fwd_t.dtype)
        last = np.empty(npix, dtype=np.int64)
        dcol = np.empty((npix, n_ch), dtype=fwd_t.dtype)
        behind = np.zeros((npix, n_ch), dtype=fwd_t.dtype)
        dalpha_out = np.empty(npix, dtype=fwd_t.dtype)
        cx = np.empty(bw, dtype=fwd_t.dtype)
        for i in range(bw):
            cx[i] = x0 + i + 0.5
        cy = np.empty(y1 - y0 + 1, dtype=fwd_t.dtype)
        for i in range(y1 - y0 + 1):
            cy[i] = y0 + i + 0.5
        max_last = start - 1
        for d in range(n_ch):
            tile_grad_bg[tid, d] = zero
        for py in range(y0, y1 + 1):
            for px in range(x0, x1 + 1):
                p = (py - y0) * bw + (px - x0)
                t = fwd_t[cam, py, px]
                trans[p] = t
                t_fin[p] = t
                last[p] = fwd_last[cam, py, px]
                max_last = max(max_last, last[p])
                dalpha_out[p] = grad_alpha[cam, py, px]
                for d in range(n_ch):
                    gc = grad_color[cam, py, px, d]
                    dcol[p, d] = gc
                    if has_bg:
                        behind[p, d] = t * backgrounds[cam, d]
                        tile_grad_bg[tid, d] += t * gc
        for k in range(max_last + 1, end):
            gi_means[k, 0] = zero
            gi_means[k, 1] = zero
            gi_conics[k, 0] = zero
            gi_conics[k, 1] = zero
            gi_conics[k, 2] = zero
            gi_opac[k] = zero
            for d in range(n_ch):
                gi_colors[k, d] = zero
        gcol = np.empty(n_ch, dtype=fwd_t.dtype)
        for k in range(max_last, start - 1, -1):
            g = isect_gid[k]
            gmx = zero
            gmy = zero
            ga = zero
            gb = zero
            gc_ = zero
            go = zero
            for d in range(n_ch):
                gcol[d] = zero
            s = smax[g]
            bx0 = max(box[g, 0], x0)
            bx1 = min(box[g, 1], x1)
            by0 = max(box[g, 2], y0)
            by1 = min(box[g, 3], y1)
            if s >= 0.0 and bx0 <= bx1 and by0 <= by1:
                mx = means2d[g, 0]
                my = means2d[g, 1]
                a = conics[g, 0]
                b = conics[g, 1]
                c = conics[g, 2]
                o = opacities[g]
                for py in range(by0, by1 + 1):
                    dy = my - cy[py - y0]
                    lo, hi = _row_span(s, float(a), float(b), float(c), float(mx), float(dy),
                                       bx0, bx1)
                    row = (py - y0) * bw - x0
                    for px in range(lo, hi + 1):
                        p = row + px
                        if k > last[p]:
                            continue
                        dx = mx - cx[px - x0]
                        sigma = half * (a * dx * dx + c * dy * dy) + b * dx * dy
                        if sigma < 0:
                            continue
                        vis = np.exp(-sigma)
                        raw = o * vis
                        alpha = min(alpha_max, raw)
                        if alpha < alpha_min:
                            continue
                        one_m = one - alpha
                        t_k = trans[p] / one_m  # T in front of this Gaussian
                        w = alpha * t_k
                        dal = zero
                        for d in range(n_ch):
                            gcd = dcol[p, d]
                            gcol[d] += w * gcd
                            col = colors[g, d]
                            dal += gcd * (col * t_k - behind[p, d] / one_m)
                            behind[p, d] += col * w
                        dal += dalpha_out[p] * t_fin[p] / one_m
                        trans[p] = t_k
                        if raw <= alpha_max:
                            go += vis * dal
                            dsig = -alpha * dal
                            gmx += dsig * (a * dx + b * dy)
                            gmy += dsig * (c * dy + b * dx)
                            ga += dsig * half * dx * dx
                            gb += dsig * dx * dy
                            gc_ += dsig * half * dy * dy
            gi_means[k, 0] = gmx
            gi_means[k, 1] = gmy
            gi_conics[k, 0] = ga
            gi_conics[k, 1] = gb
            gi_conics[k, 2] = gc_
            gi_opac[k] = go
            for d in range(n_ch):
                gi_colors[k, d] = gcol[d]


@njit(parallel=True, **_JIT)
def reduce_gradients(g_off, g_isect, gi_means, gi_conics, gi_colors, gi_opac,
                     v_means, v_conics, v_colors, v_opac):
    """Sum the per-intersection gradient rows of every Gaussian (parallel over Gaussians)."""
    n_ch = gi_colors.shape[1]
    for g in prange(g_off.shape[0] - 1):
        for j in range(g_off[g], g_off[g + 1]):
            k = g_isect[j]
            v_means[g, 0] += gi_means[k, 0]
            v_means[g, 1] += gi_means[k, 1]
            v_conics[g, 0] += gi_conics[k, 0]
            v_conics[g, 1] += gi_conics[k, 1]
            v_conics[g, 2] += gi_conics[k, 2]
            v_opac[g] += gi_opac[k]
            for d in range(n_ch):
                v_colors[g, d] += gi_colors[k, d]
