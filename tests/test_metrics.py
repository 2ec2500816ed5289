"""PSNR / SSIM against independent NumPy (and SciPy) references; LPIPS never downloads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nerfreg.metrics import LPIPS, PSNR, SSIM, psnr, ssim
from nerfreg.registry import METRICS


def _window2d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    w = np.outer(g, g)
    return w / w.sum()


def _ssim_reference(a: np.ndarray, b: np.ndarray, zero_pad: bool = False) -> float:
    """SSIM of two [H, W, C] images in float64: full 2D Gaussian window, population
    covariances, mean over the valid region (scikit-image's ``gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1``) or, with ``zero_pad``, over
    the zero-padded image (3DGS training loss)."""
    w = _window2d()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    scores = []
    for c in range(a.shape[-1]):
        x, y = a[..., c].astype(np.float64), b[..., c].astype(np.float64)
        if zero_pad:
            x, y = np.pad(x, 5), np.pad(y, 5)

        def filt(img: np.ndarray) -> np.ndarray:
            win = np.lib.stride_tricks.sliding_window_view(img, w.shape)
            return np.einsum('ijkl,kl->ij', win, w)

        mx, my = filt(x), filt(y)
        vx = filt(x * x) - mx ** 2
        vy = filt(y * y) - my ** 2
        cxy = filt(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
        scores.append(s.mean())
    return float(np.mean(scores))


def _test_images(seed: int, h: int = 40, w: int = 52) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) * 0.4 + 0.5 for c in range(3)], -1)
    a = np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1)
    b = np.clip(base * 0.9 + 0.05 + rng.normal(0, 0.08, base.shape), 0, 1)
    return a.astype(np.float32), b.astype(np.float32)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_ssim_matches_numpy_reference(seed: int) -> None:
    a, b = _test_images(seed)
    got = ssim(torch.from_numpy(a)[None], torch.from_numpy(b)[None])
    assert got.shape == (1,)
    assert abs(float(got) - _ssim_reference(a, b)) < 1e-4
    same = ssim(torch.from_numpy(a)[None], torch.from_numpy(b)[None], padding='same')
    assert abs(float(same) - _ssim_reference(a, b, zero_pad=True)) < 1e-4


def test_ssim_matches_scipy_gaussian_filter() -> None:
    """scikit-image's algorithm: scipy Gaussian filter (truncate 3.5 -> 11 taps), crop 5."""
    ndimage = pytest.importorskip('scipy.ndimage')
    a, b = _test_images(3)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    scores = []
    for c in range(3):
        x, y = a[..., c].astype(np.float64), b[..., c].astype(np.float64)

        def f(img: np.ndarray) -> np.ndarray:
            return ndimage.gaussian_filter(img, sigma=1.5, truncate=3.5)

        mx, my = f(x), f(y)
        vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
        scores.append(s[5:-5, 5:-5].mean())
    got = ssim(torch.from_numpy(a)[None], torch.from_numpy(b)[None])
    assert abs(float(got) - float(np.mean(scores))) < 1e-4


def test_ssim_properties_and_batch() -> None:
    a, b = _test_images(4)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    batch = ssim(torch.stack([ta, ta]), torch.stack([ta, tb]))
    assert batch.shape == (2,)
    assert abs(float(batch[0]) - 1.0) < 1e-5
    assert float(batch[1]) < 0.99
    # The loss variant is differentiable.
    p = ta.clone().requires_grad_(True)
    ssim(p[None], tb[None], padding='same').sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    with pytest.raises(ValueError, match='smaller than the window'):
        ssim(torch.rand(1, 8, 8, 3), torch.rand(1, 8, 8, 3))


def test_psnr() -> None:
    a, b = _test_images(5)
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    got = psnr(torch.from_numpy(a)[None], torch.from_numpy(b)[None])
    assert abs(float(got) - 10 * np.log10(1.0 / mse)) < 1e-3
    x = torch.full((2, 4, 4, 3), 0.5)
    y = x.clone()
    y[1] += 0.1
    vals = psnr(x, y)
    assert vals.shape == (2,) and vals[0] > 150 and abs(float(vals[1]) - 20.0) < 1e-3


def test_registered_metrics_accumulate() -> None:
    a, b = _test_images(6)
    ta, tb = torch.from_numpy(a)[None], torch.from_numpy(b)[None]
    m_psnr = METRICS.build(dict(type='PSNR'))
    m_ssim = METRICS.build(dict(type='SSIM'))
    assert isinstance(m_psnr, PSNR) and isinstance(m_ssim, SSIM)
    m_psnr.update(ta, tb)
    m_psnr.update(ta, ta * 0.5)
    expected = (float(psnr(ta, tb)) + float(psnr(ta, ta * 0.5))) / 2
    assert abs(m_psnr.compute() - expected) < 1e-4
    m_psnr.reset()
    assert np.isnan(m_psnr.compute())
    assert abs(float(m_ssim(ta, tb)) - _ssim_reference(a, b)) < 1e-4


def test_lpips_never_downloads(tmp_path, monkeypatch) -> None:
    """Without local weights LPIPS fails with a clear message instead of downloading."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with pytest.raises(RuntimeError, match='never downloads'):
        LPIPS()
