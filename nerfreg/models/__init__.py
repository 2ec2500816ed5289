"""Models (``MODELS``): 3D Gaussian Splatting and hash-grid radiance fields."""

from .appearance import AffineAppearance
from .base import BaseModel
from .camera_opt import CameraOptimizer
from .depth_loss import SparseDepthLoss
from .gaussian_splatting import GaussianSplatting
from .losses import l1_loss, l1_ssim_loss, ssim_loss
from .masked_metrics import MaskedMetrics
from .nerf import InstantNGP
from .nerf_optimizer import FieldOptimizer

__all__ = ['AffineAppearance', 'BaseModel', 'CameraOptimizer', 'FieldOptimizer',
           'GaussianSplatting', 'InstantNGP', 'MaskedMetrics', 'SparseDepthLoss', 'l1_loss',
           'l1_ssim_loss', 'ssim_loss']
