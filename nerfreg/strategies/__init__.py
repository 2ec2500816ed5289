"""Densification strategies (``STRATEGIES``) and structure ops on params + Adam state."""

from . import ops
from .base import Strategy, all_reduce_statistics
from .default import DefaultStrategy

__all__ = ['ops', 'Strategy', 'DefaultStrategy', 'all_reduce_statistics']

