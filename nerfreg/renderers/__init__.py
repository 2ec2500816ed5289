"""Renderers (``RENDERERS``) used by the trainer."""

from .gaussian_renderer import GaussianSplatRenderer

__all__ = ['GaussianSplatRenderer']
