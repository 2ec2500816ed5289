"""Packed Gaussian records, exact culling bounds and tile binning of the CPU rasterizer.

The first half of ``nerfreg.ops.rasterize_cpu``'s Numba kernels (compositing is in
``composite_cpu.py``). All arrays are NumPy views of CPU tensors. Gaussians are flattened
over cameras (``g = camera * N + n``) and tiles over cameras (``t = camera * tiles_x *
tiles_y + ty * tiles_x + tx``). Every kernel is generic in the float dtype (float32 for
training, float64 for finite differences); the numeric constants arrive in ``consts`` so
that comparisons and clamps happen in the input dtype, as in the torch backend:

    consts = [alpha_min (1/255), alpha_max (0.99), t_min (1e-4), 0.5, tile_size]

Exact culling. A Gaussian can only change a pixel where ``alpha >= alpha_min``, i.e. where
``sigma <= log(opacity / alpha_min)``. ``prepare_records`` bounds that ellipse (with a
margin for rounding, see ``_sigma_limit``), drops it from the tiles of its square ``mean2d
+- radius`` (the contract's tile rule) whose pixel centres it cannot reach
(``_band_tiles``), and the compositing loops visit, row by row, only the pixel columns
inside the bound (``row_span``). Every skipped (Gaussian, pixel) pair would have been
skipped by the ``alpha < 1/255`` rule, so images and gradients are those of the plain
definition.

Packed per-Gaussian record ``rec [G, R]`` (one 64-byte cache line for float32 and D <= 5):
``mean_x, mean_y, a, b, c, opacity, sigma_limit, box_x0, box_x1, box_y0, box_y1, colour...``
(box: inclusive pixel bounds of the ellipse, stored as exact small integers).

Numba's disk cache (``cache=True``) is keyed on each kernel's own source file and freezes
module globals: after changing ``REC_COLOR``, ``_PIX_SLACK`` or ``row_span`` here, also
touch ``composite_cpu.py`` (or delete its ``__pycache__``) so its kernels recompile.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# no 'contract' (FMA) and no 'reassoc': sigma, alpha and T round like the torch backend
_FASTMATH = {'nsz', 'arcp'}
KERNEL_OPTIONS = dict(cache=True, nogil=True, fastmath=_FASTMATH)

_PIX_SLACK = 1e-3  # pixels of slack on the float64 ellipse bounds
REC_COLOR = 11  # first colour column of the packed record
MAX_BANDS = 4  # tile-row bands per Gaussian that prepare_records keeps for list_tiles


def record_width(n_ch: int) -> int:
    """Columns of the packed record (rounded up to a multiple of 8)."""
    return (REC_COLOR + n_ch + 7) // 8 * 8


@njit(**KERNEL_OPTIONS)
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


@njit(**KERNEL_OPTIONS)
def _tile_span(rec, g, ts, tiles_x, tiles_y, width, height, rect):
    """Tile rectangle (tx0, tx1, ty0, ty1, half-open) of ``rect`` cut to the pixel box."""
    tx0 = max(rect[g, 0], int(rec[g, 7]) // ts)
    tx1 = min(rect[g, 1], int(rec[g, 8]) // ts + 1)
    ty0 = max(rect[g, 2], int(rec[g, 9]) // ts)
    ty1 = min(rect[g, 3], int(rec[g, 10]) // ts + 1)
    return tx0, tx1, ty0, ty1


@njit(**KERNEL_OPTIONS)
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


@njit(parallel=True, **KERNEL_OPTIONS)
def prepare_records(means2d, conics, colors, opacities, radii_f, consts, tiles_x, tiles_y,
            width, height, rec, rect, count, bands):
    """Fill the packed records, the contract's tile rectangles and the culled tile counts.

    Args:
        means2d ``[G, 2]``, conics ``[G, 3]``, colors ``[G, D]``, opacities ``[G]``,
        radii_f ``[G]`` (radii in the float dtype), consts (module doc).
    Writes ``rec [G, R]``, ``rect [G, 4]`` (tx0, tx1, ty0, ty1; half-open; the torch
    backend's float rule ``floor/ceil((mean -+ radius) / tile_size)``), ``count [G]``
    (tiles the Gaussian can reach; 0 when its radius is 0) and ``bands [G, 2 * MAX_BANDS]``
    (int32 ``lo, hi`` of ``_band_tiles`` for the first MAX_BANDS tile rows, so that
    ``list_tiles`` need not compute them again).
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
            if ty - ty0 < MAX_BANDS:
                bands[g, 2 * (ty - ty0)] = lo
                bands[g, 2 * (ty - ty0) + 1] = hi
            n_hit += max(hi - lo, 0)
        count[g] = n_hit


@njit(parallel=True, **KERNEL_OPTIONS)
def list_tiles(rec, rect, g_off, bands, consts, tiles_x, tiles_y, width, height, n_per_cam,
               g_tiles):
    """Write the (global) ids of the tiles every Gaussian reaches into ``g_tiles[g_off[g]:]``
    (tile-row bands from ``prepare_records``'s ``bands``, computed beyond MAX_BANDS rows)."""
    ts = int(consts[4])
    n_tiles = tiles_x * tiles_y
    for g in prange(g_off.shape[0] - 1):
        j = g_off[g]
        if g_off[g + 1] == j:
            continue
        base = (g // n_per_cam) * n_tiles
        tx0, tx1, ty0, ty1 = _tile_span(rec, g, ts, tiles_x, tiles_y, width, height, rect)
        for ty in range(ty0, ty1):
            if ty - ty0 < MAX_BANDS:
                lo = bands[g, 2 * (ty - ty0)]
                hi = bands[g, 2 * (ty - ty0) + 1]
            else:
                lo, hi = _band_tiles(rec, g, ty, tx0, tx1, ts, height)
            for tx in range(lo, hi):
                g_tiles[j] = base + ty * tiles_x + tx
                j += 1


@njit(parallel=True, **KERNEL_OPTIONS)
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


@njit(**KERNEL_OPTIONS)
def row_span(s, a, inv_a, b, c, mx, dy, bx0, bx1):
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




def balanced_tile_order(work: np.ndarray, n_threads: int) -> np.ndarray:
    """Tile order for prange's static split into ``n_threads`` equal blocks: tiles sorted by
    decreasing work are dealt round-robin, so every block gets a similar total."""
    by_work = np.argsort(-work, kind='stable')
    return np.concatenate([by_work[j::n_threads] for j in range(n_threads)])
