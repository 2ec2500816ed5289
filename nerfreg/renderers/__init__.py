"""Renderers (``RENDERERS``) used by the trainer."""

from .gaussian_renderer import GaussianSplatRenderer
from .volume_renderer import VolumeRenderer

__all__ = ['GaussianSplatRenderer', 'VolumeRenderer']
