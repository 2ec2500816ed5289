"""Registered image metrics: callables ``metric(pred, target) -> Tensor [B]`` that can
also accumulate (``update`` / ``compute`` / ``reset``) over an evaluation split."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from nerfreg.registry import METRICS

from .functional import psnr, ssim


class ImageMetric:
    """Base of per-image metrics on ``[B, H, W, 3]`` float images in ``[0, 1]``."""

    name = 'metric'
    higher_is_better = True

    def __init__(self) -> None:
        self._values: list[Tensor] = []

    def compute_batch(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.compute_batch(pred.clamp(0, 1), target.clamp(0, 1))

    def update(self, pred: Tensor, target: Tensor) -> Tensor:
        """Score a batch and remember the per-image values."""
        values = self(pred, target)
        self._values.append(values.detach().cpu())
        return values

    def compute(self) -> float:
        """Mean over all images seen since the last ``reset``."""
        if not self._values:
            return float('nan')
        return float(torch.cat(self._values).mean())

    def reset(self) -> None:
        self._values = []


@METRICS.register_module()
class PSNR(ImageMetric):
    """Peak signal-to-noise ratio (dB)."""

    name = 'psnr'

    def __init__(self, data_range: float = 1.0) -> None:
        super().__init__()
        self.data_range = data_range

    def compute_batch(self, pred: Tensor, target: Tensor) -> Tensor:
        return psnr(pred, target, self.data_range)


@METRICS.register_module()
class SSIM(ImageMetric):
    """SSIM with an 11x11 Gaussian window (sigma 1.5), valid region (scikit-image style)."""

    name = 'ssim'

    def __init__(self, window_size: int = 11, sigma: float = 1.5,
                 padding: str = 'valid') -> None:
        super().__init__()
        self.window_size, self.sigma, self.padding = window_size, sigma, padding

    def compute_batch(self, pred: Tensor, target: Tensor) -> Tensor:
        return ssim(pred, target, 1.0, self.window_size, self.sigma, self.padding)


_TORCHVISION_WEIGHTS = {'alex': 'alexnet-owt-7be5be79.pth', 'vgg': 'vgg16-397923af.pth',
                        'squeeze': 'squeezenet1_1-b8a52dc0.pth'}


@METRICS.register_module()
class LPIPS(ImageMetric):
    """LPIPS through the ``lpips`` package, only with locally available weights.

    Never downloads: the ``lpips`` package and the torchvision backbone weights
    (``$TORCH_HOME/hub/checkpoints``) must already be present, otherwise a
    ``RuntimeError`` explains what is missing.
    """

    name = 'lpips'
    higher_is_better = False

    def __init__(self, net: str = 'alex') -> None:
        super().__init__()
        if net not in _TORCHVISION_WEIGHTS:
            raise ValueError(f'LPIPS: net must be one of {sorted(_TORCHVISION_WEIGHTS)}')
        try:
            import lpips  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                'LPIPS needs the `lpips` package and local backbone weights; nerfreg never '
                'downloads weights. Install `lpips` and place '
                f'{_TORCHVISION_WEIGHTS[net]} in {self.weights_dir()}, or drop LPIPS from '
                'the metrics in your config.') from exc
        path = self.weights_dir() / _TORCHVISION_WEIGHTS[net]
        if not path.is_file():
            raise RuntimeError(
                f'LPIPS({net!r}): backbone weights {path} are not available locally and '
                'nerfreg never downloads them. Copy the file there, or drop LPIPS from the '
                'metrics in your config.')
        import lpips
        self.model = lpips.LPIPS(net=net, verbose=False).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @staticmethod
    def weights_dir() -> Path:
        """Where torchvision looks for cached backbone weights."""
        home = os.environ.get('TORCH_HOME') or os.path.join(
            os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')), 'torch')
        return Path(home) / 'hub' / 'checkpoints'

    def compute_batch(self, pred: Tensor, target: Tensor) -> Tensor:
        model = self.model.to(pred.device)
        x = pred.permute(0, 3, 1, 2) * 2 - 1
        y = target.permute(0, 3, 1, 2) * 2 - 1
        return model(x, y).flatten()
