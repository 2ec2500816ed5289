"""Validation images (render | ground truth | error | depth) sent to the visualizer."""

from __future__ import annotations

import re

from mmengine.hooks import Hook

from ...registry import HOOKS
from ..interfaces import target_image


def safe_name(name: str) -> str:
    """A view name usable as a file name / tag: no folders, no image suffix."""
    name = re.sub(r'\.(png|jpe?g|exr|bmp|tiff?|webp)$', '', str(name), flags=re.IGNORECASE)
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('_') or 'view'


def flush_backends(visualizer) -> None:
    """Flush writers that buffer (TensorBoard) so the files are readable now."""
    for backend in getattr(visualizer, '_vis_backends', {}).values():
        try:
            writer = backend.experiment
        except Exception:  # a backend that failed to initialise must not stop training
            continue
        if hasattr(writer, 'flush') and writer is not backend:
            writer.flush()


@HOOKS.register_module()
class VisualizationHook(Hook):
    """After each validation view among the first ``max_images``: one image
    ``render | ground truth | abs error`` (``| depth`` when rendered and ``depth``), sent
    with ``trainer.visualizer.add_image('val_<view>', image, step=global_step)`` to the
    configured backends (LocalVisBackend writes ``vis_data/vis_image/val_<view>_<step>.png``,
    TensorboardVisBackend an image summary). Rank 0 only.

    Args:
        max_images: validation views drawn per validation run.
        depth: add the coloured depth panel when the renderer produced depth.
        labels: label each panel.
        test: also draw the first ``max_images`` test views (prefix ``test_``).
    """

    priority = 'NORMAL'

    def __init__(self, max_images: int = 4, depth: bool = True, labels: bool = True,
                 test: bool = False) -> None:
        self.max_images = int(max_images)
        self.depth = bool(depth)
        self.labels = bool(labels)
        self.test = bool(test)

    def _draw(self, runner, prefix: str, batch_idx: int, data_batch, outputs) -> None:
        if getattr(runner, 'rank', 0) != 0 or batch_idx >= self.max_images or not outputs:
            return
        render_results = outputs.get('render_results') or {}
        if 'rgb' not in render_results:
            return
        from ...visualization.images import comparison_row
        target = target_image(runner.model, render_results, data_batch)
        names = data_batch.get('name') or [str(batch_idx)]
        depth = render_results.get('depth') if self.depth else None
        alpha = render_results.get('alpha')
        for i in range(render_results['rgb'].shape[0]):
            image = comparison_row(
                render_results['rgb'][i].clamp(0, 1), target[i].clamp(0, 1),
                None if depth is None else depth[i], None if alpha is None else alpha[i],
                labels=self.labels)
            name = safe_name(names[i] if i < len(names) else batch_idx)
            name = name if name.startswith(f'{prefix}_') else f'{prefix}_{name}'
            runner.visualizer.add_image(name, image, step=int(runner.global_step))

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._draw(runner, 'val', batch_idx, data_batch, outputs)

    def after_val_epoch(self, runner, metrics=None) -> None:
        if getattr(runner, 'rank', 0) == 0:
            flush_backends(runner.visualizer)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.test:
            self._draw(runner, 'test', batch_idx, data_batch, outputs)

    def after_test_epoch(self, runner, metrics=None) -> None:
        if self.test and getattr(runner, 'rank', 0) == 0:
            flush_backends(runner.visualizer)
