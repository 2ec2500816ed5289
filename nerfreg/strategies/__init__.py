"""Densification strategies (``STRATEGIES``) and structure ops on params + Adam state."""

from . import ops
from .base import Strategy, all_reduce_statistics
from .default import DefaultStrategy
from .mcmc import MCMCStrategy

__all__ = ['ops', 'Strategy', 'DefaultStrategy', 'MCMCStrategy', 'all_reduce_statistics']

