"""Photometric losses."""

from __future__ import annotations

from torch import Tensor

from nerfreg.metrics.functional import ssim


def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error."""
    return (pred - target).abs().mean()


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 - SSIM`` with the zero-padded ('same') Gaussian window of 3DGS training."""
    return 1.0 - ssim(pred, target, padding='same').mean()


def l1_ssim_loss(pred: Tensor, target: Tensor, ssim_lambda: float = 0.2) -> dict[str, Tensor]:
    """3DGS photometric loss ``(1 - l) L1 + l (1 - SSIM)`` and its parts."""
    l1 = l1_loss(pred, target)
    dssim = ssim_loss(pred, target)
    return {'loss': (1.0 - ssim_lambda) * l1 + ssim_lambda * dssim, 'l1': l1, 'dssim': dssim}
