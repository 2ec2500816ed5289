"""Models (``MODELS``): 3D Gaussian Splatting and hash-grid radiance fields."""

from .base import BaseModel
from .gaussian_splatting import GaussianSplatting
from .losses import l1_loss, l1_ssim_loss, ssim_loss
from .nerf import InstantNGP
from .nerf_optimizer import FieldOptimizer

__all__ = ['BaseModel', 'FieldOptimizer', 'GaussianSplatting', 'InstantNGP', 'l1_loss',
           'l1_ssim_loss', 'ssim_loss']
