"""Photometric losses."""

from __future__ import annotations

import torch
from torch import Tensor

from nerfreg.metrics.functional import ssim, ssim_map


def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error."""
    return (pred - target).abs().mean()


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 - SSIM`` with the zero-padded ('same') Gaussian window of 3DGS training."""
    return 1.0 - ssim(pred, target, padding='same').mean()


def use_fused_loss(pred: Tensor, target: Tensor, fused: bool | str = 'auto') -> bool:
    """Whether :func:`l1_ssim_loss` takes the fused CPU kernel: ``fused=True`` forces it
    (CPU only), ``False`` the torch reference, ``'auto'`` picks it for CPU float images
    ``[B, H, W, C]`` (float32/64) whose target needs no gradient, when Numba is importable."""
    if fused not in (True, False, 'auto'):
        raise ValueError(f"fused must be True, False or 'auto', got {fused!r}")
    if fused is False:
        return False
    if fused is True:
        return True
    if (pred.device.type != 'cpu' or target.requires_grad or pred.dim() not in (3, 4)
            or pred.dtype not in (torch.float32, torch.float64) or pred.shape != target.shape):
        return False
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def l1_ssim_loss(pred: Tensor, target: Tensor, ssim_lambda: float = 0.2,
                 fused: bool | str = 'auto') -> dict[str, Tensor]:
    """3DGS photometric loss ``(1 - l) L1 + l (1 - SSIM)`` and its parts.

    On the CPU the two terms and their gradient come from one compiled kernel
    (``nerfreg.ops.fused_ssim_cpu``; same definition, float64 intermediates); elsewhere, or
    with ``fused=False``, from the torch reference below.
    """
    if use_fused_loss(pred, target, fused):
        from nerfreg.ops.fused_ssim_cpu import fused_l1_ssim_cpu
        l1, mean_ssim = fused_l1_ssim_cpu(pred, target)
        dssim = 1.0 - mean_ssim
    else:
        l1 = l1_loss(pred, target)
        dssim = ssim_loss(pred, target)
    return {'loss': (1.0 - ssim_lambda) * l1 + ssim_lambda * dssim, 'l1': l1, 'dssim': dssim}


def masked_l1_ssim_loss(pred: Tensor, target: Tensor, mask: Tensor,
                        ssim_lambda: float = 0.2) -> dict[str, Tensor]:
    """:func:`l1_ssim_loss` over the pixels a loss mask ``[B,H,W,1]`` keeps (weights 0..1).

    Masked pixels are zeroed in both images before SSIM, so neither image's content there
    changes the loss; both terms are means over the kept pixels. An all-ones mask gives the
    torch reference of :func:`l1_ssim_loss`.
    """
    w = mask.to(pred.dtype)
    kept = (w.sum() * pred.shape[-1]).clamp_min(1e-8)
    l1 = ((pred - target).abs() * w).sum() / kept
    smap = ssim_map(pred * w, target * w, padding='same')  # [B,C,H,W]
    dssim = 1.0 - (smap * w.permute(0, 3, 1, 2)).sum() / kept
    return {'loss': (1.0 - ssim_lambda) * l1 + ssim_lambda * dssim, 'l1': l1, 'dssim': dssim}
