"""Differentiable Gaussian rasterization: projection, SH colours and pixel compositing."""

from .projection import project_gaussians
from .rasterization import rasterization
from .rasterize_torch import rasterize_to_pixels_torch
from .sh import spherical_harmonics

__all__ = ['rasterization', 'project_gaussians', 'spherical_harmonics',
           'rasterize_to_pixels_torch']
