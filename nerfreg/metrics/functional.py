"""Image quality metrics on ``[B, H, W, C]`` float images in ``[0, data_range]``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image, ``[B]`` (dB)."""
    if pred.shape != target.shape:
        raise ValueError(f'psnr: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}')
    if pred.dim() == 3:
        pred, target = pred[None], target[None]
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range ** 2 / mse.clamp_min(1e-20))


def gaussian_window(window_size: int = 11, sigma: float = 1.5, device=None,
                    dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalised 1D Gaussian window ``[window_size]``."""
    x = torch.arange(window_size, device=device, dtype=dtype) - (window_size - 1) / 2.0
    w = torch.exp(-x.pow(2) / (2.0 * sigma ** 2))
    return w / w.sum()


def _blur(x: Tensor, w: Tensor, pad: int) -> Tensor:
    """Separable depthwise Gaussian blur of ``x [B, C, H, W]`` (zero padding ``pad``)."""
    c = x.shape[1]
    k = w.numel()
    wx = w.view(1, 1, 1, k).expand(c, 1, 1, k)
    wy = w.view(1, 1, k, 1).expand(c, 1, k, 1)
    x = F.conv2d(x, wx, padding=(0, pad), groups=c)
    return F.conv2d(x, wy, padding=(pad, 0), groups=c)


def ssim_map(pred: Tensor, target: Tensor, data_range: float = 1.0, window_size: int = 11,
             sigma: float = 1.5, padding: str = 'valid', k1: float = 0.01,
             k2: float = 0.03) -> Tensor:
    """Per-pixel SSIM ``[B, C, H', W']`` with a Gaussian window.

    ``padding='valid'`` evaluates only where the window fits inside the image (the
    scikit-image / torchmetrics convention for evaluation); ``'same'`` zero-pads the
    image as the reference 3DGS training loss does.
    """
    if pred.shape != target.shape:
        raise ValueError(f'ssim: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}')
    if pred.dim() == 3:
        pred, target = pred[None], target[None]
    if padding not in ('valid', 'same'):
        raise ValueError(f"ssim: padding must be 'valid' or 'same', got {padding!r}")
    x = pred.permute(0, 3, 1, 2).float()
    y = target.permute(0, 3, 1, 2).float()
    pad = (window_size - 1) // 2 if padding == 'same' else 0
    if padding == 'valid' and min(x.shape[-2:]) < window_size:
        raise ValueError(f'ssim: image {tuple(x.shape[-2:])} smaller than the window '
                         f"{window_size}; use padding='same'")
    w = gaussian_window(window_size, sigma, device=x.device, dtype=x.dtype)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    # One blur over the five moment images.
    stats = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), w, pad)
    mx, my, mxx, myy, mxy = stats.chunk(5, dim=1)
    vx = mxx - mx * mx
    vy = myy - my * my
    cxy = mxy - mx * my
    num = (2 * mx * my + c1) * (2 * cxy + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    return num / den


def ssim(pred: Tensor, target: Tensor, data_range: float = 1.0, window_size: int = 11,
         sigma: float = 1.5, padding: str = 'valid') -> Tensor:
    """Mean SSIM per image ``[B]`` of ``[B, H, W, C]`` images (Gaussian 11x11, sigma 1.5)."""
    return ssim_map(pred, target, data_range, window_size, sigma, padding).flatten(1).mean(1)


def mse_to_psnr(mse: float, data_range: float = 1.0) -> float:
    """PSNR in dB of a mean squared error."""
    return 10.0 * math.log10(data_range ** 2 / max(mse, 1e-20))


def masked_psnr(pred: Tensor, target: Tensor, mask: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR per image ``[B]`` over the pixels a mask ``[B,H,W,1]`` keeps (weights in 0..1,
    0 = ignored): from the mask-weighted mean squared error. An all-zero mask gives NaN."""
    if pred.shape != target.shape or mask.shape != pred.shape[:-1] + (1,):
        raise ValueError(f'masked_psnr: shapes {tuple(pred.shape)}, {tuple(target.shape)} and '
                         f'mask {tuple(mask.shape)} do not fit [B,H,W,C] + [B,H,W,1]')
    w = mask.float()
    sq = (pred.float() - target.float()).pow(2) * w
    mse = sq.flatten(1).sum(1) / (w.flatten(1).sum(1) * pred.shape[-1])
    return 10.0 * torch.log10(data_range ** 2 / mse.clamp_min(1e-20))


def masked_ssim(pred: Tensor, target: Tensor, mask: Tensor, data_range: float = 1.0,
                window_size: int = 11, sigma: float = 1.5, padding: str = 'valid') -> Tensor:
    """SSIM per image ``[B]``: the mean of the SSIM map over the pixels a mask ``[B,H,W,1]``
    keeps (weighted by it). Ignored pixels are zeroed in both images first (as the masked
    training loss does), so nothing inside them changes the score. With ``'valid'`` padding
    the map covers the pixels at least ``window_size // 2`` from the border, and only the
    kept ones among those count (NaN when there are none)."""
    if mask.shape != pred.shape[:-1] + (1,):
        raise ValueError(f'masked_ssim: mask {tuple(mask.shape)} does not fit the images '
                         f'{tuple(pred.shape)} ([B,H,W,1] expected)')
    w = mask.float()
    smap = ssim_map(pred.float() * w, target.float() * w, data_range, window_size, sigma,
                    padding)  # [B,C,H',W']
    weight = w.permute(0, 3, 1, 2)
    if padding == 'valid':
        r = (window_size - 1) // 2
        weight = weight[..., r:weight.shape[-2] - r, r:weight.shape[-1] - r]
    total = (weight.flatten(1).sum(1) * smap.shape[1])
    return (smap * weight).flatten(1).sum(1) / total


def view_metrics(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
    """Per-view ``psnr [B]`` and ``ssim [B]`` of clamped ``[B,H,W,3]`` images (SSIM pads
    'same' for images smaller than its 11 px window, 'valid' otherwise); with a ``mask
    [B,H,W,1]``, over the pixels it keeps (:func:`masked_psnr`, :func:`masked_ssim`)."""
    pred, target = pred.clamp(0, 1), target.clamp(0, 1)
    padding = 'same' if min(pred.shape[1:3]) < 11 else 'valid'
    if mask is not None:
        return {'psnr': masked_psnr(pred, target, mask),
                'ssim': masked_ssim(pred, target, mask, padding=padding)}
    return {'psnr': psnr(pred, target), 'ssim': ssim(pred, target, padding=padding)}
