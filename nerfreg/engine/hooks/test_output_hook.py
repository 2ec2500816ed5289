"""Test-split outputs: rendered and ground-truth PNGs, comparison sheet, metrics.json."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.dist import all_gather_object
from mmengine.hooks import Hook

from ...registry import HOOKS
from ...utils.fileio import atomic_write_bytes
from ..interfaces import target_image
from .visualization_hook import safe_name


def _save_png(path: Path, image: Any) -> None:
    """Write a float [0, 1] or uint8 RGB image losslessly (PNG), atomically."""
    from ...datasets.image_io import write_image
    from ...visualization.images import to_uint8
    write_image(path, to_uint8(image))


def _sync(device: Any) -> None:
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def _gather(records: list[dict], runner) -> list[dict]:
    """All ranks' per-view records on every rank (ordered by view index)."""
    if getattr(runner, 'world_size', 1) > 1:
        records = [r for part in all_gather_object(records) for r in (part or [])]
    return sorted(records, key=lambda r: r['index'])


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


@HOOKS.register_module()
class TestOutputHook(Hook):
    """Write what a test run produces under ``<work_dir>/<out_dir>/``:

    - ``renders/<view>.png`` and ``gt/<view>.png`` (8-bit, lossless),
    - ``comparison.png``: rows ``render | ground truth | abs error (| depth)`` for the first
      ``sheet_max_views`` views, at most ``sheet_max_width`` wide; with
      ``per_view_comparison`` also ``comparison/<view>.png`` at full size,
    - ``metrics.json``: per-view and mean ``psnr``, ``ssim`` (``lpips`` when the ``lpips``
      package and its weights are local), ``render_time_s`` (model + renderer + metrics
      wall time per view), number of Gaussians, checkpoint step,

    and prints a table of the means. PSNR/SSIM are the model's (float renders; the 8-bit
    PNGs give the same PSNR to ~0.01 dB). Distributed: every rank writes its views' PNGs,
    rank 0 writes ``metrics.json`` with all views.

    Args:
        out_dir: folder, relative to the work dir unless absolute.
        lpips: ``'auto'`` (when available), True (required) or False.
        save_depth: also write coloured depth ``depth/<view>.png`` when rendered.
        print_table: print the rich table of means (rank 0).
    """

    priority = 'LOW'
    __test__ = False  # not a pytest class despite the name

    def __init__(self, out_dir: str = 'test', save_images: bool = True,
                 sheet_max_views: int = 16, sheet_max_width: int = 2048,
                 per_view_comparison: bool = False, lpips: bool | str = 'auto',
                 save_depth: bool = False, print_table: bool = True) -> None:
        if lpips not in (True, False, 'auto'):
            raise ValueError(f"TestOutputHook: lpips must be True, False or 'auto', got {lpips!r}")
        self.out_dir = out_dir
        self.save_images = bool(save_images)
        self.sheet_max_views = int(sheet_max_views)
        self.sheet_max_width = int(sheet_max_width)
        self.per_view_comparison = bool(per_view_comparison)
        self.lpips = lpips
        self.save_depth = bool(save_depth)
        self.print_table = bool(print_table)
        self.checkpoint: str | None = None  # set by tools/test.py for the record
        self.result: dict[str, Any] | None = None
        self._lpips_metric = None
        self._lpips_tried = False
        self._reset()

    def _reset(self) -> None:
        self._records: list[dict] = []
        self._rows: list[np.ndarray] = []
        self._names: set[str] = set()
        self._t0 = 0.0

    def output_dir(self, runner) -> Path:
        path = Path(self.out_dir)
        return path if path.is_absolute() else Path(runner.work_dir) / path

    def _lpips(self, runner):
        if self.lpips is False or self._lpips_tried:
            return self._lpips_metric
        self._lpips_tried = True
        try:
            from ...metrics import LPIPS
            self._lpips_metric = LPIPS()
        except (ImportError, RuntimeError) as exc:
            if self.lpips is True:
                raise
            runner.logger.info(f'TestOutputHook: LPIPS skipped ({str(exc).splitlines()[0]})')
        return self._lpips_metric

    # ---------------------------------------------------------------- stages
    def before_test(self, runner) -> None:
        self._reset()
        self.result = None
        out = self.output_dir(runner)
        for sub in ('renders', 'gt'):
            (out / sub).mkdir(parents=True, exist_ok=True)

    def before_test_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        _sync(getattr(runner, 'device', 'cpu'))
        self._t0 = time.perf_counter()

    def _unique(self, name: str) -> str:
        base, k = safe_name(name), 1
        name = base
        while name in self._names:
            k += 1
            name = f'{base}_{k}'
        self._names.add(name)
        return name

    @torch.no_grad()
    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        _sync(getattr(runner, 'device', 'cpu'))
        elapsed = time.perf_counter() - self._t0
        from ...visualization.images import comparison_row, fit_width
        render_results = (outputs or {}).get('render_results') or {}
        metrics = (outputs or {}).get('metrics') or {}
        if 'rgb' not in render_results:
            return
        pred = render_results['rgb'].clamp(0, 1)
        target = target_image(runner.model, render_results, data_batch).clamp(0, 1)
        depth, alpha = render_results.get('depth'), render_results.get('alpha')
        lpips_metric = self._lpips(runner)
        lpips_values = lpips_metric(pred, target) if lpips_metric is not None else None
        out = self.output_dir(runner)
        names = list(data_batch.get('name') or [])
        n = pred.shape[0]
        for i in range(n):
            name = self._unique(names[i] if i < len(names) else f'{batch_idx:05d}_{i}')
            record: dict[str, Any] = {'index': batch_idx * n + i, 'name': name,
                                      'render_time_s': elapsed / n}
            for key, value in metrics.items():
                value = torch.as_tensor(value).detach().reshape(-1)
                if value.numel() == n:
                    record[key] = float(value[i])
            if lpips_values is not None:
                record['lpips'] = float(lpips_values[i])
            d_i = None if depth is None else depth[i]
            a_i = None if alpha is None else alpha[i]
            if self.save_images:
                record['render'] = f'renders/{name}.png'
                record['gt'] = f'gt/{name}.png'
                _save_png(out / record['render'], pred[i])
                _save_png(out / record['gt'], target[i])
                if self.save_depth and d_i is not None:
                    from ...visualization.images import colorize_depth
                    record['depth'] = f'depth/{name}.png'
                    _save_png(out / record['depth'], colorize_depth(d_i, a_i))
            want_row = len(self._rows) < self.sheet_max_views
            if want_row or self.per_view_comparison:
                row = comparison_row(pred[i], target[i], d_i, a_i, title=name)
                if self.per_view_comparison:
                    _save_png(out / 'comparison' / f'{name}.png', row)
                if want_row:
                    self._rows.append(fit_width(row, self.sheet_max_width))
            self._records.append(record)

    def after_test_epoch(self, runner, metrics=None) -> None:
        records = _gather(self._records, runner)
        if getattr(runner, 'rank', 0) != 0:
            return
        from ...visualization.images import vconcat
        out = self.output_dir(runner)
        keys = [k for k in ('psnr', 'ssim', 'lpips') if any(k in r for r in records)]
        keys += sorted({k for r in records for k, v in r.items() if isinstance(v, float)}
                       - set(keys) - {'render_time_s'})
        mean = {k: _mean([r.get(k) for r in records]) for k in keys}
        times = [r['render_time_s'] for r in records]
        mean['render_time_s'] = _mean(times)
        mean['render_time_median_s'] = float(np.median(times)) if times else None
        if mean['render_time_s']:
            mean['fps'] = 1.0 / mean['render_time_s']
        model = runner.model
        cams = getattr(getattr(getattr(runner.data, 'dataset', None), 'test', None),
                       'cameras', None)
        result = {
            'split': 'test',
            'checkpoint': self.checkpoint,
            'checkpoint_step': int(runner.global_step),
            'num_gaussians': int(getattr(model, 'num_gaussians', 0)),
            'num_views': len(records),
            'image_size': ([int(cams.width[0]), int(cams.height[0])]
                           if cams is not None and len(cams) else None),
            'device': str(getattr(runner, 'device', 'cpu')),
            'mean': mean,
            'views': records,
        }
        if self._rows:
            result['comparison'] = 'comparison.png'
            _save_png(out / 'comparison.png', vconcat(self._rows))
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / 'metrics.json', json.dumps(result, indent=2).encode())
        self.result = result
        self._rows = []
        text = ' '.join(f'{k} {v:.4f}' for k, v in mean.items() if v is not None)
        runner.logger.info(f'Test outputs in {out} ({len(records)} views): {text}')
        if self.print_table:
            self._print_table(result, out)

    @staticmethod
    def _print_table(result: dict, out: Path) -> None:
        from rich.console import Console
        from rich.table import Table
        table = Table(title=f'test @ step {result["checkpoint_step"]}',
                      caption=f'{result["num_views"]} views, '
                              f'{result["num_gaussians"]:,} Gaussians')
        table.add_column('metric')
        table.add_column('mean', justify='right')
        for key, value in result['mean'].items():
            if value is not None:
                table.add_row(key, f'{value:.4f}' if key != 'fps' else f'{value:.2f}')
        console = Console()
        console.print(table)
        console.print(f'outputs: {out}')
