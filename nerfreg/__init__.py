"""nerfreg: a registry-driven framework for training differentiable renderers."""

from .version import __version__

__all__ = ['__version__']
