"""The SIMD float32 compositing kernels (``composite_simd_cpu``) and their ``exp_f32``.

The kernels must give what the scalar kernels give (which the torch backend, brute force
and finite differences pin down in ``test_ops_rasterize_cpu.py``): images to 1e-5 and
gradients to 1e-4 relative on scenes that exercise partial tiles, 8-pixel tiles, early
stops, backgrounds, absgrad, single- and many-channel colours and indefinite conics.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from numba import njit
from test_ops_rasterize_cpu import rasterize, rel_err, scene_2d  # tests/ is on sys.path

from nerfreg.ops import composite_cpu, composite_simd_cpu
from nerfreg.ops import rasterize_cpu as R
from nerfreg.ops.simd_math_cpu import exp_f32_array


def test_exp_f32_relative_error():
    """Every 127th float32 in [-20, 0] (the range alpha needs: exp(-sigma) >= 1/255 means
    sigma <= 5.6; 8.6M values, all binades down to 0) and a dense grid of the whole
    clamped range [-87, 88]."""
    lo = np.float32(-20.0).view(np.uint32)  # negative floats: bits grow as the value falls
    dense = np.arange(np.uint32(0x80000000), lo + 1, 127, dtype=np.uint32).view(np.float32)
    x = np.concatenate([dense, np.linspace(-87, 88, 1_000_001, dtype=np.float32)])
    got = np.empty_like(x)
    exp_f32_array(x, got)
    ref = np.exp(x.astype(np.float64))
    rel = np.abs(got - ref) / ref
    assert rel.max() < 2.5e-7  # ~2 ulp (float32 ulp / value is 6e-8 to 1.2e-7)
    assert np.mean(got == np.exp(x)) > 0.7  # mostly equal to libm's expf
    tail = np.array([-100.0, -1e30, -np.inf], dtype=np.float32)
    out = np.empty_like(tail)
    exp_f32_array(tail, out)
    assert np.all((out > 0) & (out < 2e-38))  # clamped at -87: tiny, never alpha >= 1/255


def _has_avx2() -> bool:
    try:
        return ' avx2' in Path('/proc/cpuinfo').read_text()
    except OSError:
        return False


@pytest.mark.skipif(not _has_avx2(), reason='checks AVX2 code generation')
def test_exp_f32_loop_is_vectorised():
    """A loop calling exp_f32 (possibly loaded from Numba's cache) becomes 8-lane code."""
    loop = njit(exp_f32_array.py_func)  # a fresh, uncached compile: its assembly is kept
    x = np.zeros(16, dtype=np.float32)
    loop(x, x.copy())
    asm = loop.inspect_asm(loop.signatures[0])
    assert re.search(r'vfmadd\w*ps\s+%ymm', asm)  # 8-lane FMA: the polynomial
    assert 'expf' not in asm


def _both(sc: dict, tile_size: int, bg, absgrad: bool = False):
    """(simd, scalar) results of the cpu backend: image, alpha, input gradients, evals."""
    out = []
    for kernels in ('auto', 'scalar'):
        before = R.KERNELS
        R.KERNELS = kernels
        try:
            if absgrad:
                sink = torch.zeros(sc['means2d'].shape, requires_grad=True)
                inp = {k: sc[k].clone().requires_grad_(True)
                       for k in ('means2d', 'conics', 'colors', 'opacities')}
                img, alpha = R.rasterize_to_pixels_cpu(
                    inp['means2d'], inp['conics'], inp['colors'], inp['opacities'],
                    sc['depths'], sc['radii'], sc['width'], sc['height'], tile_size, bg,
                    absgrad_sink=sink)
                g = torch.Generator().manual_seed(3)
                (img * torch.randn(img.shape, generator=g)).sum().backward()
                grads = {k: v.grad for k, v in inp.items()}
                grads['absgrad'] = sink.grad
            else:
                img, alpha, grads = rasterize(R.rasterize_to_pixels_cpu, sc, tile_size, bg,
                                              grad=True)
            out.append((img, alpha, grads, R.LAST_FORWARD_STATS['alpha_evals']))
        finally:
            R.KERNELS = before
    return out


@pytest.mark.parametrize('seed,n,width,height,tile_size,n_ch,with_bg,scale', [
    (0, 60, 41, 35, 16, 3, False, 3.0),   # partial tiles at the right and bottom
    (1, 300, 45, 38, 16, 4, True, 5.0),   # dense: pixels stop early
    (2, 200, 37, 29, 8, 1, True, 4.0),    # 8-pixel tiles, one channel
    (3, 150, 33, 20, 16, 2, False, 3.0),  # two channels (unused slots)
])
def test_simd_kernels_match_scalar_kernels(seed, n, width, height, tile_size, n_ch, with_bg,
                                           scale):
    sc = scene_2d(seed, n_cams=2, n=n, width=width, height=height, n_ch=n_ch, scale=scale)
    bg = torch.rand(2, n_ch) if with_bg else None
    (img, alpha, grads, ev), (img0, alpha0, grads0, ev0) = _both(sc, tile_size, bg)
    err = torch.maximum((img - img0).abs().amax(-1), (alpha - alpha0).abs()[..., 0])
    # float32 T against the scalar kernels' float64 T: a pixel whose T_next is within
    # rounding of 1e-4 may stop in one and not the other (moves by alpha T < 1e-4 * 100)
    assert (err > 1e-5).float().mean() < 2e-3 and err.max() < 1e-2
    assert ev >= 0.99 * ev0 > 0  # live pixels of the box: a superset of the exact spans
    for k in grads0:
        assert grads0[k].abs().max() > 0, k
        assert rel_err(grads[k], grads0[k]) < 1e-4, k


def test_simd_kernels_absgrad_and_indefinite_conics():
    sc = scene_2d(11, n_cams=1, n=80, width=40, height=30, scale=4.0)
    sc['conics'][0, :5, 1] = 2.0 * (sc['conics'][0, :5, 0] * sc['conics'][0, :5, 2]).sqrt()
    sc['conics'][0, 5:8, 0] = -0.2
    (img, alpha, grads, _), (img0, alpha0, grads0, _) = _both(sc, 16, None, absgrad=True)
    assert (img - img0).abs().max() < 1e-5 and (alpha - alpha0).abs().max() < 1e-5
    for k in grads0:
        assert rel_err(grads[k], grads0[k]) < 1e-4, k


def test_kernel_choice():
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    simd = (composite_simd_cpu.composite_forward_f32, composite_simd_cpu.composite_backward_f32)
    scalar = (composite_cpu.composite_forward, composite_cpu.composite_backward)
    assert R.compositing_kernels(f32, 16, 3) == simd
    assert R.compositing_kernels(f32, 8, composite_simd_cpu.MAX_CH) == simd
    assert R.compositing_kernels(f64, 16, 3) == scalar
    assert R.compositing_kernels(f32, 32, 3) == scalar
    assert R.compositing_kernels(f32, 16, composite_simd_cpu.MAX_CH + 1) == scalar
    before = R.KERNELS
    try:
        R.KERNELS = 'scalar'
        assert R.compositing_kernels(f32, 16, 3) == scalar
        R.KERNELS = 'simd'
        with pytest.raises(ValueError, match="'auto' or 'scalar'"):
            R.compositing_kernels(f32, 16, 3)
    finally:
        R.KERNELS = before
