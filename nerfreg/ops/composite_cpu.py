"""Front-to-back compositing of binned tiles and its hand-written backward (Numba).

The second half of ``nerfreg.ops.rasterize_cpu``'s kernels; the record layout, the
``consts`` array and the culling bound ``row_span`` come from ``tile_binning_cpu.py``
(read its docstring first, including the note on Numba's cache).

Work inside a tile is Gaussian-major (CUDA 3DGS is pixel-parallel) over a per-tile pixel
state (T, accumulated colour, last Gaussian). Per tile row, 64-bit masks mark the pixels a
Gaussian can still change (forward: not yet stopped; backward: already reached by the
back-to-front walk); a Gaussian's row visits only those bits, and skips the row when they
are all clear, which leaves every result bit-identical to visiting each pixel. The
backward writes one gradient row per tile intersection (tiles never share writes: no
races, and the result does not depend on the number of threads); a second parallel pass
sums the rows of every Gaussian.

Per-intersection gradient row ``gi [M, 6 + D]``: ``d mean_x, d mean_y, d a, d b, d c,
d opacity, d colour...``; with two more columns (``gi [M, 8 + D]``) the backward also writes
``sum |d mean_x|, sum |d mean_y|`` over the pixels (gsplat's ``absgrad``).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from .tile_binning_cpu import KERNEL_OPTIONS, REC_COLOR, row_span


@njit(**KERNEL_OPTIONS)
def _tile_pixels(tid, n_tiles, tiles_x, ts, width, height):
    """(camera, x0, x1, y0, y1) of global tile ``tid``: its inclusive pixel bounds."""
    cam = tid // n_tiles
    ty = (tid % n_tiles) // tiles_x
    tx = (tid % n_tiles) % tiles_x
    x0 = tx * ts
    y0 = ty * ts
    return cam, x0, min(x0 + ts, width) - 1, y0, min(y0 + ts, height) - 1


@njit(**KERNEL_OPTIONS)
def _pixel_centres(first, n, rec):
    """Centres ``first + i + 0.5`` of n pixels, in the dtype of ``rec``."""
    out = np.empty(n, dtype=rec.dtype)
    for i in range(n):
        out[i] = first + i + 0.5
    return out


@njit(**KERNEL_OPTIONS)
def _box_in_tile(rec, g, x0, x1, y0, y1):
    """Gaussian g's inclusive pixel box (record columns 7-10) cut to the tile."""
    return (max(int(rec[g, 7]), x0), min(int(rec[g, 8]), x1), max(int(rec[g, 9]), y0),
            min(int(rec[g, 10]), y1))


@njit(**KERNEL_OPTIONS)
def _bit_range(a, b):
    """int64 mask with bits a..b set (0 <= a, b <= 63; empty when a > b)."""
    if a > b:
        return 0
    top = -1 if b == 63 else (1 << (b + 1)) - 1
    return top & ~((1 << a) - 1)


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Hint the CPU to fetch ``arr[idx]`` (a flat index) into the cache."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.VoidType(), [i8p, ir.IntType(32), ir.IntType(32), ir.IntType(32)]),
            'llvm.prefetch.p0i8')
        i32 = ir.IntType(32)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(arr, types.intp), codegen


@njit(**KERNEL_OPTIONS)
def _prefetch_record(rec, g):
    """Prefetch Gaussian g's packed record (one cache line for float32, D <= 5)."""
    _prefetch(rec, g * rec.shape[1])


@njit(parallel=True, **KERNEL_OPTIONS)
def composite_forward(tile_off, isect_gid, rec, backgrounds, consts, n_cams, width, height,
                      tiles_x, tiles_y, tile_order, out_color, out_alpha, out_t, out_last,
                      evals):
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
        cam, x0, x1, y0, y1 = _tile_pixels(tid, n_tiles, tiles_x, ts, width, height)
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
        n_words = (bw + 63) // 64  # live-pixel bit masks, n_words per tile row
        live = np.empty(bh * n_words, dtype=np.int64)
        for r in range(bh):
            for w in range(n_words):
                live[r * n_words + w] = _bit_range(0, min(bw - 64 * w, 64) - 1)
        cx = _pixel_centres(x0, bw, rec)  # in the input dtype
        cy = _pixel_centres(y0, bh, rec)
        n_done = 0
        n_eval = 0
        for k in range(start, end):
            if n_done == npix:
                break
            if k + 1 < end:
                _prefetch_record(rec, isect_gid[k + 1])
            g = isect_gid[k]
            bx0, bx1, by0, by1 = _box_in_tile(rec, g, x0, x1, y0, y1)
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
                r = py - y0
                w0 = (bx0 - x0) >> 6
                w1 = (bx1 - x0) >> 6
                if w0 == w1 and live[r * n_words + w0] == 0:
                    continue  # the whole row segment has stopped: skip its bounds
                dy = my - cy[r]
                lo, hi = row_span(s, fa, inv_a, float(b), float(c), float(mx), float(dy),
                                  bx0, bx1)
                if lo > hi:
                    continue
                for w in range((lo - x0) >> 6, ((hi - x0) >> 6) + 1):
                    i0 = 64 * w
                    m = live[r * n_words + w] & _bit_range(max(lo - x0 - i0, 0),
                                                           min(hi - x0 - i0, 63))
                    while m != 0:  # the live pixels of the span, in increasing x
                        i = i0 + trailing_zeros(m)
                        m &= m - 1
                        p = r * bw + i
                        n_eval += 1
                        dx = mx - cx[i]
                        sigma = half * (a * dx * dx + c * dy * dy) + b * dx * dy
                        if sigma < 0:
                            continue
                        alpha = min(alpha_max, o * np.exp(-sigma))
                        if alpha < alpha_min:
                            continue
                        t_next = trans[p] * (one - alpha)
                        rnd[0] = t_next
                        if rnd[0] <= t_min:
                            live[r * n_words + w] &= ~(1 << (i - i0))
                            n_done += 1
                            continue
                        wt = alpha * trans_in[p]
                        for d in range(n_ch):
                            acc[p, d] += rec[g, REC_COLOR + d] * wt
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


@njit(parallel=True, **KERNEL_OPTIONS)
def composite_backward(tile_off, isect_gid, rec, backgrounds, consts, n_cams, width, height,
                       tiles_x, tiles_y, tile_order, fwd_t, fwd_last, grad_color, grad_alpha,
                       gi, tile_grad_bg):
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
        cam, x0, x1, y0, y1 = _tile_pixels(tid, n_tiles, tiles_x, ts, width, height)
        bw = x1 - x0 + 1
        bh = y1 - y0 + 1
        npix = bw * bh
        start = tile_off[tid]
        end = tile_off[tid + 1]
        trans = np.empty(npix)  # float64 state
        last = np.empty(npix, dtype=np.int64)
        dcol = np.empty((npix, n_ch))
        behind = np.empty(npix)  # sum_d G_d S_d - dL/d alpha_out * T_final
        cx = _pixel_centres(x0, bw, rec)  # in the input dtype
        cy = _pixel_centres(y0, bh, rec)
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
        # pixels become active once k <= their last Gaussian: activate them in order of
        # decreasing last, as bits of per-row masks (n_words int64 per tile row)
        by_last = np.argsort(last)
        j = npix - 1
        n_words = (bw + 63) // 64
        active = np.zeros(bh * n_words, dtype=np.int64)
        gcol = np.empty(n_ch)
        for k in range(max_last, start - 1, -1):
            while j >= 0 and last[by_last[j]] >= k:
                q = by_last[j]
                i = q % bw
                active[(q // bw) * n_words + (i >> 6)] |= 1 << (i & 63)
                j -= 1
            if k > start:
                _prefetch_record(rec, isect_gid[k - 1])
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
            bx0, bx1, by0, by1 = _box_in_tile(rec, g, x0, x1, y0, y1)
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
                r = py - y0
                w0 = (bx0 - x0) >> 6
                if w0 == (bx1 - x0) >> 6 and active[r * n_words + w0] == 0:
                    continue  # no pixel of the row segment reaches this Gaussian
                dy = my - cy[r]
                lo, hi = row_span(s, fa, inv_a, float(b), float(c), float(mx), float(dy),
                                  bx0, bx1)
                if lo > hi:
                    continue
                for w in range((lo - x0) >> 6, ((hi - x0) >> 6) + 1):
                    i0 = 64 * w
                    m = active[r * n_words + w] & _bit_range(max(lo - x0 - i0, 0),
                                                             min(hi - x0 - i0, 63))
                    while m != 0:  # the active pixels of the span, in increasing x
                        i = i0 + trailing_zeros(m)
                        m &= m - 1
                        p = r * bw + i
                        dx = mx - cx[i]
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
                        wt = alpha * t_k
                        gdotc = 0.0
                        for d in range(n_ch):
                            gcd = dcol[p, d]
                            gcol[d] += wt * gcd
                            gdotc += gcd * rec[g, REC_COLOR + d]
                        dal = gdotc * t_k - behind[p] * inv
                        behind[p] += wt * gdotc
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


@njit(parallel=True, **KERNEL_OPTIONS)
def sum_intersection_gradients(g_off, g_isect, gi, out):
    """``out[g] = sum of gi rows of Gaussian g`` (parallel over Gaussians)."""
    n_col = gi.shape[1]
    for g in prange(g_off.shape[0] - 1):
        for j in range(g_off[g], g_off[g + 1]):
            k = g_isect[j]
            for i in range(n_col):
                out[g, i] += gi[k, i]
