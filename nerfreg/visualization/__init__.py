"""Visualizer backends. mmengine's ``LocalVisBackend``, ``TensorboardVisBackend`` and
``WandbVisBackend`` resolve through the parent registry; nerfreg-specific ones go here."""

from .images import (
    colorize_depth,
    comparison_row,
    error_map,
    hconcat,
    to_uint8,
    vconcat,
)

__all__ = ['colorize_depth', 'comparison_row', 'error_map', 'hconcat', 'to_uint8', 'vconcat']
