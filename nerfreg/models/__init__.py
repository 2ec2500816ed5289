"""Models (``MODELS``): 3D Gaussian Splatting."""

from .base import BaseModel
from .gaussian_splatting import GaussianSplatting
from .losses import l1_loss, l1_ssim_loss, ssim_loss

__all__ = ['BaseModel', 'GaussianSplatting', 'l1_loss', 'l1_ssim_loss', 'ssim_loss']
