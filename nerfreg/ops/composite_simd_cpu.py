"""float32 compositing kernels written for 8-lane SIMD (AVX2): the training path.

Same contract, records and results as ``composite_cpu.py`` (read its docstring first): a
tile is walked Gaussian by Gaussian. Here a Gaussian covers its pixel box (record columns
7-10, cut to the tile) in aligned runs of ``LANES`` pixels of a row, with no branch per
pixel: sigma, alpha (``exp_f32``, vectorisable), the skip and stop rules and the state
update are computed for every lane and applied with selects, so LLVM turns a run into a
few dozen AVX2 instructions. The exact per-row span (``row_span``, a square root per
row) is not used: once a lane costs little, the box is cheaper, and pixels outside the
ellipse get alpha < 1/255 and change nothing. Per run the kernels keep the number of live
pixels (forward) or the largest ``last`` (backward) and skip runs that no pixel needs.
``evals`` counts the live (pixel, Gaussian) pairs of the boxes (a superset of the scalar
kernels' count).

Differences from the scalar kernels: transmittance, the backward's running sums and the
per-lane gradient partial sums are float32 (as in gsplat's CUDA kernels) instead of
float64, and ``exp`` is ``exp_f32`` instead of libm's ``expf`` (both within ~2 ulp); the
results agree with the torch reference to the same tolerances.

Colours go through four fixed slots (``MAX_CH``; unused ones hold zeros) written out in
the lane loop, so the colour sums cost no loops of their own. All per-tile state lives in
fixed-size stack arrays (``stack_array``; one per written quantity), which LLVM knows
cannot alias each other or the heap, and the lane loops index views starting at the run
(a non-negative index needs no wraparound select): both are needed for LLVM to vectorise
them. Hence the limits ``MAX_TILE`` (tile side, pixels) and ``MAX_CH`` (channels);
``rasterize_cpu`` uses the scalar kernels beyond them and for float64. ``last`` is stored
as int32 (intersection indices below 2^31).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .composite_cpu import _box_in_tile, _prefetch_record, _tile_pixels
from .simd_math_cpu import exp_f32, stack_array
from .tile_binning_cpu import KERNEL_OPTIONS, REC_COLOR

LANES = 8
MAX_TILE = 16  # tile side; rows are padded to a multiple of LANES
MAX_PIX = MAX_TILE * MAX_TILE
MAX_RUNS = MAX_PIX // LANES  # runs of LANES pixels per tile
MAX_CH = 4  # colour channels: always 4 slots (RGB + depth), unused ones zero
_N_ACC = 8  # per-lane gradient sums: mean x, mean y, a, b, c, opacity, |mean x|, |mean y|
_I0 = np.int32(0)
# error_model 'numpy': no ZeroDivisionError branch for 1 / (1 - alpha), which would stop
# LLVM's vectoriser (1 - alpha >= 0.01 anyway)
_OPTIONS = dict(KERNEL_OPTIONS, error_model='numpy')
_CH_PIX = MAX_CH * MAX_PIX  # stack array sizes must be literal constants
_ACC_LANES = _N_ACC * LANES
_CH_LANES = MAX_CH * LANES


@njit(**_OPTIONS)
def _load_record(rec, g, cols, n_ch):
    """Gaussian g's mean, conic and opacity; its colour goes to ``cols`` (MAX_CH slots,
    zero beyond n_ch)."""
    for d in range(n_ch):
        cols[d] = rec[g, REC_COLOR + d]
    return rec[g, 0], rec[g, 1], rec[g, 2], rec[g, 3], rec[g, 4], rec[g, 5]


@njit(**_OPTIONS)
def _forward_tile(tid, tile_off, isect_gid, rec, backgrounds, consts, n_tiles, tiles_x,
                  width, height, out_color, out_alpha, out_t, out_last, evals):
    alpha_min = consts[0]
    alpha_max = consts[1]
    t_min = consts[2]
    half = consts[3]
    ts = int(consts[4])
    one = half + half
    zero = half - half
    n_ch = out_color.shape[3]
    cam, x0, x1, y0, y1 = _tile_pixels(tid, n_tiles, tiles_x, ts, width, height)
    bw = x1 - x0 + 1
    bh = y1 - y0 + 1
    ws = (bw + LANES - 1) // LANES * LANES  # row stride of the state arrays
    n_runs = ws // LANES
    start = tile_off[tid]
    end = tile_off[tid + 1]
    trans = stack_array(np.float32, MAX_PIX)
    live = stack_array(np.int32, MAX_PIX)
    last = stack_array(np.int32, MAX_PIX)
    # one stack array per colour slot: LLVM cannot tell views of one array apart
    acc0 = stack_array(np.float32, MAX_PIX)
    acc1 = stack_array(np.float32, MAX_PIX)
    acc2 = stack_array(np.float32, MAX_PIX)
    acc3 = stack_array(np.float32, MAX_PIX)
    cx = stack_array(np.float32, MAX_TILE)
    cy = stack_array(np.float32, MAX_TILE)
    run_live = stack_array(np.int64, MAX_RUNS)  # live pixels per run
    cols = stack_array(np.float32, MAX_CH)
    f_stop = stack_array(np.int32, LANES)
    f_in = stack_array(np.int32, LANES)
    none = np.int32(start - 1)
    for i in range(ws):
        cx[i] = x0 + i + 0.5
    for r in range(bh):
        cy[r] = y0 + r + 0.5
        for w in range(n_runs):
            run_live[r * n_runs + w] = min(bw - w * LANES, LANES)
        for i in range(ws):
            q = r * ws + i
            trans[q] = one
            live[q] = 1 if i < bw else 0
            last[q] = none
    for q in range(MAX_PIX):
        acc0[q] = zero
        acc1[q] = zero
        acc2[q] = zero
        acc3[q] = zero
    for d in range(MAX_CH):
        cols[d] = zero
    npix = bw * bh
    n_done = 0
    n_eval = 0
    for k in range(start, end):
        if n_done == npix:
            break
        if k + 1 < end:
            _prefetch_record(rec, isect_gid[k + 1])
        g = isect_gid[k]
        bx0, bx1, by0, by1 = _box_in_tile(rec, g, x0, x1, y0, y1)
        mx, my, a, b, c, o = _load_record(rec, g, cols, n_ch)
        col0, col1, col2, col3 = cols[0], cols[1], cols[2], cols[3]
        k32 = np.int32(k)
        # the whole box, in runs of LANES pixels: cheaper than the exact per-row span
        # (a square root per row) now that a lane costs little; lanes outside the
        # ellipse get alpha < alpha_min and change nothing
        w0 = (bx0 - x0) // LANES
        w1 = (bx1 - x0) // LANES
        clo = np.float32(bx0 + 0.5)  # the box as pixel centres: float32 lane tests
        chi = np.float32(bx1 + 0.5)
        for py in range(by0, by1 + 1):
            r = py - y0
            dy = my - cy[r]
            cdy = c * dy * dy
            for w in range(w0, w1 + 1):
                if run_live[r * n_runs + w] == 0:
                    continue  # every pixel of the run has stopped
                c0 = w * LANES
                q0 = r * ws + c0
                n_stop = 0
                n_in = 0
                # views: their indices j >= 0 need no wraparound, which would stop LLVM
                tr = trans[q0:q0 + LANES]
                lv = live[q0:q0 + LANES]
                la = last[q0:q0 + LANES]
                xs = cx[c0:c0 + LANES]
                ac0 = acc0[q0:q0 + LANES]
                ac1 = acc1[q0:q0 + LANES]
                ac2 = acc2[q0:q0 + LANES]
                ac3 = acc3[q0:q0 + LANES]
                for j in range(LANES):  # one SIMD run: no branches
                    dx = mx - xs[j]
                    sigma = half * (a * dx * dx + cdy) + b * dx * dy
                    alpha = min(alpha_max, o * exp_f32(-sigma))
                    inside = (lv[j] != 0) & (xs[j] >= clo) & (xs[j] <= chi)
                    ok = inside & (sigma >= zero) & (alpha >= alpha_min)
                    t = tr[j]
                    t_next = t * (one - alpha)
                    stop = ok & (t_next <= t_min)
                    upd = ok & (t_next > t_min)
                    wt = alpha * t if upd else zero
                    ac0[j] += col0 * wt
                    ac1[j] += col1 * wt
                    ac2[j] += col2 * wt
                    ac3[j] += col3 * wt
                    tr[j] = t_next if upd else t
                    la[j] = k32 if upd else la[j]
                    lv[j] = _I0 if stop else lv[j]
                    f_stop[j] = stop  # counted below: an int64 sum here would halve VF
                    f_in[j] = inside
                for j in range(LANES):
                    n_stop += f_stop[j]
                    n_in += f_in[j]
                n_eval += n_in
                n_done += n_stop
                run_live[r * n_runs + w] -= n_stop
    evals[tid] = n_eval
    has_bg = backgrounds.shape[0] > 0
    for r in range(bh):
        for i in range(bw):
            q = r * ws + i
            t = trans[q]
            for d in range(n_ch):
                v = acc0[q] if d == 0 else acc1[q] if d == 1 else acc2[q] if d == 2 else acc3[q]
                if has_bg:
                    v += t * backgrounds[cam, d]
                out_color[cam, y0 + r, x0 + i, d] = v
            out_alpha[cam, y0 + r, x0 + i] = one - t
            out_t[cam, y0 + r, x0 + i] = t
            out_last[cam, y0 + r, x0 + i] = last[q]


@njit(parallel=True, **_OPTIONS)
def composite_forward_f32(tile_off, isect_gid, rec, backgrounds, consts, n_cams, width, height,
                          tiles_x, tiles_y, tile_order, out_color, out_alpha, out_t, out_last,
                          evals):
    """``composite_cpu.composite_forward`` for float32 and tiles up to ``MAX_TILE``
    (same arguments and outputs; ``out_t`` holds the float32 transmittance)."""
    n_tiles = tiles_x * tiles_y
    for it in prange(n_cams * n_tiles):
        _forward_tile(tile_order[it], tile_off, isect_gid, rec, backgrounds, consts, n_tiles,
                      tiles_x, width, height, out_color, out_alpha, out_t, out_last, evals)


@njit(**_OPTIONS)
def _lane_sum(lanes, m):
    """Sum (in float64) of the LANES partial sums ``lanes[m * LANES:(m + 1) * LANES]``."""
    v = 0.0
    for j in range(LANES):
        v += lanes[m * LANES + j]
    return v


@njit(**_OPTIONS)
def _backward_tile(tid, tile_off, isect_gid, rec, backgrounds, consts, n_tiles, tiles_x,
                   width, height, fwd_t, fwd_last, grad_color, grad_alpha, gi, tile_grad_bg):
    alpha_min = consts[0]
    alpha_max = consts[1]
    half = consts[3]
    ts = int(consts[4])
    one = half + half
    zero = half - half
    n_ch = grad_color.shape[3]
    want_abs = gi.shape[1] >= 8 + n_ch
    cam, x0, x1, y0, y1 = _tile_pixels(tid, n_tiles, tiles_x, ts, width, height)
    bw = x1 - x0 + 1
    bh = y1 - y0 + 1
    ws = (bw + LANES - 1) // LANES * LANES
    n_runs = ws // LANES
    start = tile_off[tid]
    end = tile_off[tid + 1]
    trans = stack_array(np.float32, MAX_PIX)
    behind = stack_array(np.float32, MAX_PIX)  # sum_d G_d S_d - dL/d alpha_out T_final
    last = stack_array(np.int32, MAX_PIX)
    dcol = stack_array(np.float32, _CH_PIX)  # dcol[d * MAX_PIX + q]
    cx = stack_array(np.float32, MAX_TILE)
    cy = stack_array(np.float32, MAX_TILE)
    run_last = stack_array(np.int64, MAX_RUNS)  # largest last of each run
    cols = stack_array(np.float32, MAX_CH)
    lacc = stack_array(np.float32, _ACC_LANES)  # per-lane gradient sums
    lcol = stack_array(np.float32, _CH_LANES)
    for d in range(MAX_CH):
        cols[d] = zero
    for q in range(n_ch * MAX_PIX, MAX_CH * MAX_PIX):
        dcol[q] = zero  # unused colour slots
    for i in range(ws):
        cx[i] = x0 + i + 0.5
    for d in range(n_ch):
        tile_grad_bg[tid, d] = zero
    has_bg = backgrounds.shape[0] > 0
    max_last = start - 1
    for r in range(bh):
        py = y0 + r
        cy[r] = py + 0.5
        for w in range(n_runs):
            run_last[r * n_runs + w] = start - 1
        for i in range(ws):
            q = r * ws + i
            if i >= bw:  # padding lanes: never active
                trans[q] = one
                last[q] = np.int32(start - 1)
                behind[q] = zero
                for d in range(n_ch):
                    dcol[d * MAX_PIX + q] = zero
                continue
            px = x0 + i
            t = fwd_t[cam, py, px]
            trans[q] = t
            lq = fwd_last[cam, py, px]
            last[q] = np.int32(lq)
            run_last[r * n_runs + i // LANES] = max(run_last[r * n_runs + i // LANES], lq)
            max_last = max(max_last, lq)
            acc_b = -float(grad_alpha[cam, py, px]) * t
            for d in range(n_ch):
                gcd = float(grad_color[cam, py, px, d])
                dcol[d * MAX_PIX + q] = gcd
                if has_bg:
                    acc_b += gcd * t * backgrounds[cam, d]
                    tile_grad_bg[tid, d] += t * gcd
            behind[q] = acc_b
    gi[max_last + 1:end, :] = zero
    for k in range(max_last, start - 1, -1):
        if k > start:
            _prefetch_record(rec, isect_gid[k - 1])
        g = isect_gid[k]
        bx0, bx1, by0, by1 = _box_in_tile(rec, g, x0, x1, y0, y1)
        mx, my, a, b, c, o = _load_record(rec, g, cols, n_ch)
        col0, col1, col2, col3 = cols[0], cols[1], cols[2], cols[3]
        k32 = np.int32(k)
        for j in range(_N_ACC * LANES):
            lacc[j] = zero
        g_mx = lacc[0:LANES]
        g_my = lacc[LANES:2 * LANES]
        g_a = lacc[2 * LANES:3 * LANES]
        g_b = lacc[3 * LANES:4 * LANES]
        g_c = lacc[4 * LANES:5 * LANES]
        g_o = lacc[5 * LANES:6 * LANES]
        g_amx = lacc[6 * LANES:7 * LANES]
        g_amy = lacc[7 * LANES:8 * LANES]
        for j in range(MAX_CH * LANES):
            lcol[j] = zero
        g_c0 = lcol[0:LANES]
        g_c1 = lcol[LANES:2 * LANES]
        g_c2 = lcol[2 * LANES:3 * LANES]
        g_c3 = lcol[3 * LANES:4 * LANES]
        w0 = (bx0 - x0) // LANES
        w1 = (bx1 - x0) // LANES
        clo = np.float32(bx0 + 0.5)
        chi = np.float32(bx1 + 0.5)
        for py in range(by0, by1 + 1):
            r = py - y0
            dy = my - cy[r]
            cdy = c * dy * dy
            for w in range(w0, w1 + 1):
                if run_last[r * n_runs + w] < k:
                    continue  # no pixel of the run reaches this Gaussian
                c0 = w * LANES
                q0 = r * ws + c0
                tr = trans[q0:q0 + LANES]
                bq = behind[q0:q0 + LANES]
                la = last[q0:q0 + LANES]
                xs = cx[c0:c0 + LANES]
                dc0 = dcol[q0:q0 + LANES]
                dc1 = dcol[MAX_PIX + q0:MAX_PIX + q0 + LANES]
                dc2 = dcol[2 * MAX_PIX + q0:2 * MAX_PIX + q0 + LANES]
                dc3 = dcol[3 * MAX_PIX + q0:3 * MAX_PIX + q0 + LANES]
                for j in range(LANES):  # one SIMD run: no branches
                    dx = mx - xs[j]
                    sigma = half * (a * dx * dx + cdy) + b * dx * dy
                    vis = exp_f32(-sigma)
                    raw = o * vis
                    alpha = min(alpha_max, raw)
                    ok = ((la[j] >= k32) & (xs[j] >= clo) & (xs[j] <= chi)
                          & (sigma >= zero) & (alpha >= alpha_min))
                    inv = one / (one - alpha)  # the factor the forward multiplied by
                    t = tr[j]
                    t_k = t * inv  # transmittance in front of this Gaussian
                    wt = alpha * t_k
                    gd = ((dc0[j] * col0 + dc1[j] * col1) + dc2[j] * col2) + dc3[j] * col3
                    bh_j = bq[j]
                    dal = gd * t_k - bh_j * inv
                    tr[j] = t_k if ok else t
                    bq[j] = bh_j + wt * gd if ok else bh_j
                    w_ok = wt if ok else zero
                    g_c0[j] += w_ok * dc0[j]
                    g_c1[j] += w_ok * dc1[j]
                    g_c2[j] += w_ok * dc2[j]
                    g_c3[j] += w_ok * dc3[j]
                    grad_ok = ok & (raw <= alpha_max)  # clamped alpha has no gradient
                    dsig = -alpha * dal if grad_ok else zero
                    g_o[j] += vis * dal if grad_ok else zero
                    pmx = dsig * (a * dx + b * dy)
                    pmy = dsig * (c * dy + b * dx)
                    g_mx[j] += pmx
                    g_my[j] += pmy
                    g_a[j] += dsig * dx * dx
                    g_b[j] += dsig * dx * dy
                    g_c[j] += dsig * dy * dy
                    g_amx[j] += abs(pmx)
                    g_amy[j] += abs(pmy)
        gi[k, 0] = _lane_sum(lacc, 0)
        gi[k, 1] = _lane_sum(lacc, 1)
        gi[k, 2] = 0.5 * _lane_sum(lacc, 2)
        gi[k, 3] = _lane_sum(lacc, 3)
        gi[k, 4] = 0.5 * _lane_sum(lacc, 4)
        gi[k, 5] = _lane_sum(lacc, 5)
        for d in range(n_ch):
            gi[k, 6 + d] = _lane_sum(lcol, d)
        if want_abs:
            gi[k, 6 + n_ch] = _lane_sum(lacc, 6)
            gi[k, 7 + n_ch] = _lane_sum(lacc, 7)


@njit(parallel=True, **_OPTIONS)
def composite_backward_f32(tile_off, isect_gid, rec, backgrounds, consts, n_cams, width, height,
                           tiles_x, tiles_y, tile_order, fwd_t, fwd_last, grad_color,
                           grad_alpha, gi, tile_grad_bg):
    """``composite_cpu.composite_backward`` for float32 and tiles up to ``MAX_TILE`` (same
    arguments and outputs)."""
    n_tiles = tiles_x * tiles_y
    for it in prange(n_cams * n_tiles):
        _backward_tile(tile_order[it], tile_off, isect_gid, rec, backgrounds, consts, n_tiles,
                       tiles_x, width, height, fwd_t, fwd_last, grad_color, grad_alpha, gi,
                       tile_grad_bg)
