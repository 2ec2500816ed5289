"""Image metrics: functional ``psnr``/``ssim`` and registered ``PSNR``, ``SSIM``, ``LPIPS``."""

from .functional import psnr, ssim, ssim_map
from .metrics import LPIPS, PSNR, SSIM, ImageMetric

__all__ = ['psnr', 'ssim', 'ssim_map', 'ImageMetric', 'PSNR', 'SSIM', 'LPIPS']
