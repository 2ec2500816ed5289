"""Numba kernels behind ``nerfreg.ops.rasterize_cpu`` (tile binning, forward, backward).

All arrays are NumPy views of CPU tensors. Gaussians are flattened over cameras
(``g = camera * N + n``) and tiles over cameras (``t = camera * tiles_x * tiles_y + ty *
tiles_x + tx``). Every kernel is generic in the float dtype (float32 for training, float64
for finite differences); the numeric constants arrive in ``consts`` so that comparisons and
clamps happen in the input dtype, as in the torch backend:

    consts = [alpha_min (1/255), alpha_max (0.99), t_min (1e-4), 0.5, tile_size]

Exact culling. A Gaussian can only change a pixel where ``alpha >= alpha_min``, i.e. where
``sigma <= log(opacity / alpha_min)``. ``prepare`` bounds that ellipse (with a margin for
rounding, see ``_sigma_limit``), drops it from the tiles of its square ``mean2d +- radius``
(the contract's tile rule) whose pixel centres it cannot reach (``_band_tiles``), and the
tile loops visit, row by row, only the pixel columns inside the bound (``_row_span``).
Every skipped (Gaussian, pixel) pair would have been skipped by the ``alpha < 1/255`` rule,
so images and gradients are those of the plain definition.

Work inside a tile is Gaussian-major (CUDA 3DGS is pixel-parallel) over a per-tile pixel
state (T, accumulated colour, done flag, last Gaussian). The backward writes one gradient
row per tile intersection (tiles never share writes: no races, and the result does not
depend on the number of threads); a second parallel pass sums the rows of every Gaussian.

Packed per-Gaussian record ``rec [G, R]`` (one 64-byte cache line for float32 and D <= 5):
``mean_x, mean_y, a, b, c, opacity, sigma_limit, box_x0, box_x1, box_y0, box_y1, colour...``
(box: inclusive pixel bounds of the ellipse, stored as exact small integers).
Per-intersection gradient row ``gi [M, 6 + D]``: ``d mean_x, d mean_y, d a, d b, d c,
d opacity, d colour...``; with two more columns (``gi [M, 8 + D]``) the backward also writes
``sum |d mean_x|, sum |d mean_y|`` over the pixels (gsplat's ``absgrad``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# no 'contract' (FMA) and no 'reassoc': sigma, alpha and T round like the torch backend
_FASTMATH = {'nsz', 'arcp'}
_JIT = dict(cache=True, nogil=True, fastmath=_FASTMATH)

_PIX_SLACK = 1e-3  # pixels of slack on the float64 ellipse bounds
REC_COLOR = 11  # first colour column of the packed record


def record_width(n_ch: int) -> int:
    """Columns of the packed record (rounded up to a multiple of 8)."""
    return (REC_COLOR + n_ch + 7) // 8 * 8


@njit(**_JIT)
def _sigma_limit(o, a, b, c, alpha_min):
    """Conservative bound s with ``alpha >= alpha_min  =>  sigma <= s``.

    -1 when the Gaussian can never reach alpha_min, inf when the conic is not positive
    definite (no bound: visit every pixel). The margin covers float32 rounding of sigma,
    whose relative error grows with the conic's condition number.
    """
    if not o >= alpha_min:
        return -1.0
    det = a * c - b * b
    if not (a > 0.0 and c > 0.0 and det > 0.0):
        return np.inf
    half_tr = 0.5 * (a + c)
    root = math.sqrt(max(half_tr * half_tr - det, 0.0))
    cond = (half_tr + root) / max(half_tr - root, 1e-300)
    s = math.log(o / alpha_min)
    return s * (1.0 + 1e-3 + 1e-5 * cond) + 1e-3


@njit(**_JIT)
def _tile_span(rec, g, ts, tiles_x, tiles_y, width, height, rect):
    """Tile rectangle (tx0, tx1, ty0, ty1, half-open) of ``rect`` cut to the pixel box."""
    tx0 = max(rect[g, 0], int(rec[g, 7]) // ts)
    tx1 = min(rect[g, 1], int(rec[g, 8]) // ts + 1)
    ty0 = max(rect[g, 2], int(rec[g, 9]) // ts)
    ty1 = min(rect[g, 3], int(rec[g, 10]) // ts + 1)
    return tx0, tx1, ty0, ty1


@njit(**_JIT)
def _band_tiles(rec, g, ty, tx0, tx1, ts, height):
    """Tiles [lo, hi) of row ty (within [tx0, tx1)) whose pixel centres the ellipse
    ``sigma <= s`` can reach: the ellipse's x-extent over the band of the row's pixel-centre
    rows, from its leftmost / rightmost points or the band edge nearest to them."""
    s = float(rec[g, 6])
    if s == np.inf:
        return tx0, tx1
    py0 = max(ty * ts, int(rec[g, 9]))
    py1 = min(min(ty * ts + ts, height) - 1, int(rec[g, 10]))
    if py0 > py1:
        return 0, 0
    mx = float(rec[g, 0])
    my = float(rec[g, 1])
    a = float(rec[g, 2])
    b = float(rec[g, 3])
    c = float(rec[g, 4])
    y_lo = py0 + 0.5
    y_hi = py1 + 0.5
    hx = math.sqrt(2.0 * s * c / (a * c - b * b))
    lo = 1 << 30
    hi = -(1 << 30)
    for side in range(2):
        # extreme point of the ellipse on this side: x = mx -+ hx at y = my +- b hx / c
        y_ext = my + b * hx / c if side == 0 else my - b * hx / c
        y = min(max(y_ext, y_lo), y_hi)
        dy = my - y
        qb = b * dy
        disc = qb * qb - a * (c * dy * dy - 2.0 * s)
        if disc < 0.0:
            continue
        sq = math.sqrt(disc)
        if side == 0:
            lo = min(lo, int(math.ceil(mx - (sq - qb) / a - 0.5 - _PIX_SLACK)))
        else:
            hi = max(hi, int(math.floor(mx + (sq + qb) / a - 0.5 + _PIX_SLACK)))
    if lo > hi:
        return 0, 0
    lo = max(lo, int(rec[g, 7]))
    hi = min(hi, int(rec[g, 8]))
    if lo > hi:
        return 0, 0
    return max(tx0, lo // ts), min(tx1, hi // ts + 1)


@njit(parallel=True, **_JIT)
def prepare(means2d, conics, colors, opacities, radii_f, consts, tiles_x, tiles_y,
            width, height, rec, rect, count):
    """Fill the packed records, the contract's tile rectangles and the culled tile counts.

    Args:
        means2d ``[G, 2]``, conics ``[G, 3]``, colors ``[G, D]``, opacities ``[G]``,
        radii_f ``[G]`` (radii in the float dtype), consts (module doc).
    Writes ``rec [G, R]``, ``rect [G, 4]`` (tx0, tx1, ty0, ty1; half-open; the torch
    backend's float rule ``floor/ceil((mean -+ radius) / tile_size)``) and ``count [G]``
    (tiles the Gaussian can reach; 0 when its radius is 0).
    """
    alpha_min = consts[0]
    ts_f = consts[4]
    ts = int(ts_f)
    n_ch = colors.shape[1]
    for g in prange(means2d.shape[0]):
        mx = means2d[g, 0]
        my = means2d[g, 1]
        rec[g, 0] = mx
        rec[g, 1] = my
        rec[g, 2] = conics[g, 0]
        rec[g, 3] = conics[g, 1]
        rec[g, 4] = conics[g, 2]
        rec[g, 5] = opacities[g]
        for d in range(n_ch):
            rec[g, REC_COLOR + d] = colors[g, d]
        count[g] = 0
        r = radii_f[g]
        if not r > 0:
            rec[g, 6] = -1.0
            continue
        # same float ops and dtype as the torch backend's tile_intersections
        rect[g, 0] = int(min(max(np.floor((mx - r) / ts_f), 0), tiles_x))
        rect[g, 1] = int(min(max(np.ceil((mx + r) / ts_f), 0), tiles_x))
        rect[g, 2] = int(min(max(np.floor((my - r) / ts_f), 0), tiles_y))
        rect[g, 3] = int(min(max(np.ceil((my + r) / ts_f), 0), tiles_y))
        a = float(conics[g, 0])
        b = float(conics[g, 1])
        c = float(conics[g, 2])
        s = _sigma_limit(float(opacities[g]), a, b, c, float(alpha_min))
        rec[g, 6] = s
        if s < 0.0:
            continue
        if s == np.inf:
            rec[g, 7] = 0
            rec[g, 8] = width - 1
            rec[g, 9] = 0
            rec[g, 10] = height - 1
        else:
            det = a * c - b * b
            hx = math.sqrt(2.0 * s * c / det)
            hy = math.sqrt(2.0 * s * a / det)
            mxf = float(mx)
            myf = float(my)
            # pixel p (centre p + 0.5) can be reached only if |mean - centre| <= h
            bx0 = max(math.ceil(mxf - hx - 0.5 - _PIX_SLACK), -1.0)
            bx1 = min(math.floor(mxf + hx - 0.5 + _PIX_SLACK), float(width))
            by0 = max(math.ceil(myf - hy - 0.5 - _PIX_SLACK), -1.0)
            by1 = min(math.floor(myf + hy - 0.5 + _PIX_SLACK), float(height))
            rec[g, 7] = max(bx0, 0.0)
            rec[g, 8] = min(bx1, width - 1.0)
            rec[g, 9] = max(by0, 0.0)
            rec[g, 10] = min(by1, height - 1.0)
            if bx0 > bx1 or by0 > by1 or bx1 < 0 or by1 < 0 or bx0 >= width or by0 >= height:
                rec[g, 6] = -1.0
                continue
        tx0, tx1, ty0, ty1 = _tile_span(rec, g, ts, tiles_x, tiles_y, width, height, rect)
        n_hit = 0
        for ty in range(ty0, ty1):
            lo, hi = _band_tiles(rec, g, ty, tx0, tx1, ts, height)
            n_hit += max(hi - lo, 0)
        count[g] = n_hit


@njit(parallel=True, **_JIT)
def list_tiles(rec, rect, g_off, consts, tiles_x, tiles_y, width, height, n_per_cam,
               g_tiles):
    """Write the (global) ids of the tiles every Gaussian reaches into ``g_tiles[g_off[g]:]``."""
    ts = int(consts[4])
    n_tiles = tiles_x * tiles_y
    for g in prange(g_off.shape[0] - 1):
        j = g_off[g]
        if g_off[g + 1] == j:
            continue
        base = (g // n_per_cam) * n_tiles
        tx0, tx1, ty0, ty1 = _tile_span(rec, g, ts, tiles_x, tiles_y, width, height, rect)
        for ty in range(ty0, ty1):
            lo, hi = _band_tiles(rec, g, ty, tx0, tx1, ts, height)
            for tx in range(lo, hi):
                g_tiles[j] = base + ty * tiles_x + tx
                j += 1


@njit(parallel=True, **_JIT)
def bin_gaussians(order, g_off, g_tiles, n_tiles_total, n_chunks):
    """Parallel stable counting sort of the intersections by tile.

    Args:
        order: Gaussian ids with ``count > 0`` in increasing (depth, id) order; chunk p of
            it is scattered by one task, after the chunks before it in every tile.
    Returns:
        ``tile_off [T + 1]`` (tile t's depth-sorted list is ``isect_gid[tile_off[t]:
        tile_off[t+1]]``), ``isect_gid [M]`` and ``g_isect [M]`` (positions of Gaussian g's
        intersections: ``g_isect[g_off[g]:g_off[g+1]]``).
    """
    nv = order.shape[0]
    m = g_tiles.shape[0]
    hist = np.zeros((n_chunks, n_tiles_total), dtype=np.int64)
    for p in prange(n_chunks):
        for i in range(p * nv // n_chunks, (p + 1) * nv // n_chunks):
            g = order[i]
            for j in range(g_off[g], g_off[g + 1]):
                hist[p, g_tiles[j]] += 1
    tile_off = np.empty(n_tiles_total + 1, dtype=np.int64)
    run = 0
    for t in range(n_tiles_total):
        tile_off[t] = run
        for p in range(n_chunks):
            h = hist[p, t]
            hist[p, t] = run
            run += h
    tile_off[n_tiles_total] = run
    isect_gid = np.empty(m, dtype=np.int32)
    g_isect = np.empty(m, dtype=np.int64)
    for p in prange(n_chunks):
        for i in range(p * nv // n_chunks, (p + 1) * nv // n_chunks):
            g = order[i]
            for j in range(g_off[g], g_off[g + 1]):
                t = g_tiles[j]
                pos = hist[p, t]
                hist[p, t] = pos + 1
                isect_gid[pos] = g
                g_isect[j] = pos
    return tile_off, isect_gid, g_isect


@njit(**_JIT)
def _row_span(s, a, inv_a, b, c, mx, dy, bx0, bx1):
    """Inclusive pixel columns of a row (``dy`` = mean_y - centre_y) where ``sigma <= s``
    is possible, cut to [bx0, bx1]; empty when lo > hi. ``inv_a`` = 1 / a."""
    if s == np.inf:
        return bx0, bx1
    # 0.5 a dx^2 + b dy dx + 0.5 c dy^2 - s <= 0  with  dx = mx - centre_x
    qb = b * dy
    disc = qb * qb - a * (c * dy * dy - 2.0 * s)
    if disc < 0.0:
        return 1, 0
    sq = math.sqrt(disc)
    lo = max(int(math.ceil(mx - (sq - qb) * inv_a - 0.5 - _PIX_SLACK)), bx0)
    hi = min(int(math.floor(mx + (sq + qb) * inv_a - 0.5 + _PIX_SLACK)), bx1)
    return lo, hi


@njit(parallel=True, **_JIT)
def forward(tile_off, isect_gid, rec, backgrounds, consts, n_cams, width, height, tiles_x,
            tiles_y, tile_order, out_color, out_alpha, out_t, out_last, evals):
    """Front-to-back compositing of every tile.

    T is accumulated in float64 and rounded to the input dtype for the stop test and the
    weights, which is what torch's cumprod does for float32 (it accumulates in double).
    Writes ``out_color [C, H, W, D]`` (background added when ``backgrounds`` has rows),
    ``out_alpha [C, H, W]`` = 1 - T, ``out_t [C, H, W]`` (final float64 transmittance) and
    ``out_last [C, H, W]`` (intersection index of the last composited Gaussian, ``tile
    start - 1`` when none) and ``evals [C * tiles]`` (alpha evaluations per tile: the
    (pixel, Gaussian) pairs whose sigma was computed; a profiling counter).
    """
    alpha_min = consts[0]
    alpha_max = consts[1]
    t_min = consts[2]
    half = consts[3]
    ts = int(consts[4])
    one = half + half
    n_ch = out_color.shape[3]
    n_tiles = tiles_x * tiles_y
    has_bg = backgrounds.shape[0] > 0
    for it in prange(n_cams * n_tiles):
        tid = tile_order[it]
        cam = tid // n_tiles
        ty = (tid % n_tiles) // tiles_x
        tx = (tid % n_tiles) % tiles_x
        x0 = tx * ts
        y0 = ty * ts
        x1 = min(x0 + ts, width) - 1
        y1 = min(y0 + ts, height) - 1
        bw = x1 - x0 + 1
        bh = y1 - y0 + 1
        npix = bw * bh
        start = tile_off[tid]
        end = tile_off[tid + 1]
        trans = np.ones(npix)  # float64 product, like torch's cumprod accumulator
        trans_in = np.empty(npix, dtype=rec.dtype)  # the product rounded to the dtype
        trans_in[:] = one
        rnd = np.empty(1, dtype=rec.dtype)
        acc = np.zeros((npix, n_ch), dtype=rec.dtype)
        last = np.full(npix, start - 1, dtype=np.int64)
        done = np.zeros(npix, dtype=np.bool_)
        cx = np.empty(bw, dtype=rec.dtype)  # pixel centres in the input dtype
        for i in range(bw):
            cx[i] = x0 + i + 0.5
        cy = np.empty(bh, dtype=rec.dtype)
        for i in range(bh):
            cy[i] = y0 + i + 0.5
        n_done = 0
        n_eval = 0
        for k in range(start, end):
            if n_done == npix:
                break
            g = isect_gid[k]
            bx0 = max(int(rec[g, 7]), x0)
            bx1 = min(int(rec[g, 8]), x1)
            by0 = max(int(rec[g, 9]), y0)
            by1 = min(int(rec[g, 10]), y1)
            mx = rec[g, 0]
            my = rec[g, 1]
            a = rec[g, 2]
            b = rec[g, 3]
            c = rec[g, 4]
            o = rec[g, 5]
            s = float(rec[g, 6])
            fa = float(a)
            inv_a = 1.0 / fa
            for py in range(by0, by1 + 1):
                dy = my - cy[py - y0]
                lo, hi = _row_span(s, fa, inv_a, float(b), float(c), float(mx), float(dy),
                                   bx0, bx1)
                row = (py - y0) * bw - x0
                for px in range(lo, hi + 1):
                    p = row + px
                    if done[p]:
                        continue
                    n_eval += 1
                    dx = mx - cx[px - x0]
                    sigma = half * (a * dx * dx + c * dy * dy) + b * dx * dy
                    if sigma < 0:
                        continue
                    alpha = min(alpha_max, o * np.exp(-sigma))
                    if alpha < alpha_min:
                        continue
                    t_next = trans[p] * (one - alpha)
                    rnd[0] = t_next
                    if rnd[0] <= t_min:
                        done[p] = True
                        n_done += 1
                        continue
                    w = alpha * trans_in[p]
                    for d in range(n_ch):
                        acc[p, d] += rec[g, REC_COLOR + d] * w
                    trans[p] = t_next
                    trans_in[p] = rnd[0]
                    last[p] = k
        evals[tid] = n_eval
        for py in range(y0, y1 + 1):
            for px in range(x0, x1 + 1):
                p = (py - y0) * bw + (px - x0)
                t = trans_in[p]
                for d in range(n_ch):
                    v = acc[p, d]
                    if has_bg:
                        v += t * backgrounds[cam, d]
                    out_color[cam, py, px, d] = v
                out_alpha[cam, py, px] = one - t
                out_t[cam, py, px] = trans[p]
                out_last[cam, py, px] = last[p]


@njit(parallel=True, **_JIT)
def backward(tile_off, isect_gid, rec, backgrounds, consts, n_cams, width, height, tiles_x,
             tiles_y, tile_order, fwd_t, fwd_last, grad_color, grad_alpha, gi, tile_grad_bg):
    """Back-to-front gradient walk of every tile (T recovered by division, as in 3DGS).

    With ``S_d`` the colour composited behind Gaussian k (background included) and ``G_d``
    the pixel's colour gradient, ``dL/d alpha_k = T_k sum_d G_d c_kd - (sum_d G_d S_d -
    dL/d alpha_out T_final) / (1 - alpha_k)``; the bracket is kept as one running scalar per
    pixel. Writes the per-intersection gradient rows ``gi [M, 6 + D]`` and the per-tile
    background gradient ``tile_grad_bg [C * tiles, D]``.
    """
    alpha_min = consts[0]
    alpha_max = consts[1]
    half = consts[3]
    ts = int(consts[4])
    one = half + half
    zero = half - half
    n_ch = grad_color.shape[3]
    n_tiles = tiles_x * tiles_y
    has_bg = backgrounds.shape[0] > 0
    want_abs = gi.shape[1] >= 8 + n_ch  # also sum |d mean2d| per pixel (absgrad)
    for it in prange(n_cams * n_tiles):
        tid = tile_order[it]
        cam = tid // n_tiles
        ty = (tid % n_tiles) // tiles_x
        tx = (tid % n_tiles) % tiles_x
        x0 = tx * ts
        y0 = ty * ts
        x1 = min(x0 + ts, width) - 1
        y1 = min(y0 + ts, height) - 1
        bw = x1 - x0 + 1
        bh = y1 - y0 + 1
        npix = bw * bh
        start = tile_off[tid]
        end = tile_off[tid + 1]
        trans = np.empty(npix)  # float64 state
        last = np.empty(npix, dtype=np.int64)
        dcol = np.empty((npix, n_ch))
        behind = np.empty(npix)  # sum_d G_d S_d - dL/d alpha_out * T_final
        cx = np.empty(bw, dtype=rec.dtype)
        for i in range(bw):
            cx[i] = x0 + i + 0.5
        cy = np.empty(bh, dtype=rec.dtype)
        for i in range(bh):
            cy[i] = y0 + i + 0.5
        max_last = start - 1
        for d in range(n_ch):
            tile_grad_bg[tid, d] = zero
        for py in range(y0, y1 + 1):
            for px in range(x0, x1 + 1):
                p = (py - y0) * bw + (px - x0)
                t = fwd_t[cam, py, px]
                trans[p] = t
                last[p] = fwd_last[cam, py, px]
                max_last = max(max_last, last[p])
                acc = -float(grad_alpha[cam, py, px]) * t
                for d in range(n_ch):
                    gcd = float(grad_color[cam, py, px, d])
                    dcol[p, d] = gcd
                    if has_bg:
                        acc += gcd * t * backgrounds[cam, d]
                        tile_grad_bg[tid, d] += t * gcd
                behind[p] = acc
        gi[max_last + 1:end, :] = zero
        gcol = np.empty(n_ch)
        for k in range(max_last, start - 1, -1):
            g = isect_gid[k]
            gcol[:] = 0.0
            gmx = 0.0
            gmy = 0.0
            ga = 0.0
            gb = 0.0
            gc = 0.0
            go = 0.0
            amx = 0.0
            amy = 0.0
            bx0 = max(int(rec[g, 7]), x0)
            bx1 = min(int(rec[g, 8]), x1)
            by0 = max(int(rec[g, 9]), y0)
            by1 = min(int(rec[g, 10]), y1)
            mx = rec[g, 0]
            my = rec[g, 1]
            a = rec[g, 2]
            b = rec[g, 3]
            c = rec[g, 4]
            o = rec[g, 5]
            s = float(rec[g, 6])
            fa = float(a)
            inv_a = 1.0 / fa
            for py in range(by0, by1 + 1):
                dy = my - cy[py - y0]
                lo, hi = _row_span(s, fa, inv_a, float(b), float(c), float(mx), float(dy),
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
                    inv = 1.0 / (one - alpha)  # the factor the forward multiplied by
                    t_k = trans[p] * inv  # transmittance in front of this Gaussian
                    w = alpha * t_k
                    gdotc = 0.0
                    for d in range(n_ch):
                        gcd = dcol[p, d]
                        gcol[d] += w * gcd
                        gdotc += gcd * rec[g, REC_COLOR + d]
                    dal = gdotc * t_k - behind[p] * inv
                    behind[p] += w * gdotc
                    trans[p] = t_k
                    if raw <= alpha_max:  # clamped alpha has no gradient
                        go += vis * dal
                        dsig = -alpha * dal
                        fdx = float(dx)
                        fdy = float(dy)
                        pmx = dsig * (a * fdx + b * fdy)
                        pmy = dsig * (c * fdy + b * fdx)
                        gmx += pmx
                        gmy += pmy
                        if want_abs:
                            amx += abs(pmx)
                            amy += abs(pmy)
                        ga += dsig * fdx * fdx
                        gb += dsig * fdx * fdy
                        gc += dsig * fdy * fdy
            gi[k, 0] = gmx
            gi[k, 1] = gmy
            gi[k, 2] = 0.5 * ga
            gi[k, 3] = gb
            gi[k, 4] = 0.5 * gc
            gi[k, 5] = go
            for d in range(n_ch):
                gi[k, 6 + d] = gcol[d]
            if want_abs:
                gi[k, 6 + n_ch] = amx
                gi[k, 7 + n_ch] = amy


def balanced_order(work: np.ndarray, n_threads: int) -> np.ndarray:
    """Tile order for prange's static split into ``n_threads`` equal blocks: tiles sorted by
    decreasing work are dealt round-robin, so every block gets a similar total."""
    by_work = np.argsort(-work, kind='stable')
    return np.concatenate([by_work[j::n_threads] for j in range(n_threads)])


@njit(parallel=True, **_JIT)
def reduce_gradients(g_off, g_isect, gi, out):
    """``out[g] = sum of gi rows of Gaussian g`` (parallel over Gaussians)."""
    n_col = gi.shape[1]
    for g in prange(g_off.shape[0] - 1):
        for j in range(g_off[g], g_off[g + 1]):
            k = g_isect[j]
            for i in range(n_col):
                out[g, i] += gi[k, i]
