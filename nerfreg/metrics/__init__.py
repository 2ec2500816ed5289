"""Image metrics: functional ``psnr``/``ssim`` (plain and masked) and registered ``PSNR``,
``SSIM``, ``LPIPS``."""

from .functional import masked_psnr, masked_ssim, psnr, ssim, ssim_map, view_metrics
from .metrics import LPIPS, PSNR, SSIM, ImageMetric

__all__ = ['psnr', 'ssim', 'ssim_map', 'masked_psnr', 'masked_ssim', 'view_metrics',
           'ImageMetric', 'PSNR', 'SSIM', 'LPIPS']
