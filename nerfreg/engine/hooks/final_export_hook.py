"""End of training: export the scene, score the test split, say where everything is."""

from __future__ import annotations

from pathlib import Path

from mmengine.hooks import Hook

from ...registry import HOOKS
from .test_output_hook import TestOutputHook


@HOOKS.register_module()
class FinalExportHook(Hook):
    """In ``after_train``: write ``<work_dir>/<ply_name>`` (standard 3DGS PLY; optionally
    ``.splat`` too), then, with ``run_test``, run ``trainer.test()`` with a
    ``TestOutputHook`` (registered if the config has none) so that ``<work_dir>/test/``
    holds renders, ground truth, a comparison sheet and ``metrics.json``. Ends with one log
    line listing the outputs. Export is rank 0 only; the test runs on every rank.

    ``exporters``: more formats from the ``EXPORTERS`` registry, each
    ``dict(type='XExporter', filename='name.ext', **its_args)`` (``filename`` defaults to
    ``scene`` + the exporter's ``suffix``).
    """

    priority = 'LOW'

    def __init__(self, export_ply: bool = True, ply_name: str = 'point_cloud.ply',
                 export_splat: bool = False, splat_name: str = 'scene.splat',
                 run_test: bool = True, exporters: list[dict] | None = None) -> None:
        self.export_ply = bool(export_ply)
        self.ply_name = ply_name
        self.export_splat = bool(export_splat)
        self.splat_name = splat_name
        self.run_test = bool(run_test)
        self.exporters = [dict(e) for e in exporters or []]

    def after_train(self, runner) -> None:
        work_dir = Path(runner.work_dir)
        outputs: list[str] = []
        marker = work_dir / 'last_checkpoint'
        if marker.is_file():
            outputs.append(f'checkpoint {marker.read_text().strip()}')
        if getattr(runner, 'rank', 0) == 0:
            if self.export_ply:
                from ...exporters import write_ply
                path = write_ply(runner.model, work_dir / self.ply_name,
                                 rasterize_mode=getattr(runner.renderer, 'rasterize_mode', None))
                outputs.append(f'PLY {path} ({runner.model.num_gaussians:,} Gaussians)')
            if self.export_splat:
                from ...exporters import write_splat
                outputs.append(f'splat {write_splat(runner.model, work_dir / self.splat_name)}')
            for cfg in self.exporters:
                outputs.append(self._export(runner.model, work_dir, dict(cfg)))
        if self.run_test and self._has_test_views(runner):
            hook = next((h for h in runner.hooks if isinstance(h, TestOutputHook)), None)
            if hook is None:
                hook = TestOutputHook()
                runner.register_hook(hook)
            runner.test()
            out = hook.output_dir(runner)
            mean = (hook.result or {}).get('mean') or {}
            scores = ', '.join(f'{k} {mean[k]:.4f}' for k in ('psnr', 'ssim', 'lpips')
                               if mean.get(k) is not None)
            outputs.append(f'test renders {out / "renders"}, metrics {out / "metrics.json"}'
                           + (f' ({scores})' if scores else ''))
        if getattr(runner, 'rank', 0) == 0:
            runner.logger.info(f'Training finished at step {runner.global_step}. Outputs in '
                               f'{work_dir}: ' + '; '.join(outputs))

    @staticmethod
    def _export(model, work_dir: Path, cfg: dict) -> str:
        from ...registry import EXPORTERS
        from ..exporting import export_formats, export_model
        name = cfg.pop('type')
        fmt = next((k for k, c in export_formats().items() if c is EXPORTERS.get(name)), name)
        filename = cfg.pop('filename', None) or f'scene{getattr(EXPORTERS.get(name), "suffix", "")}'
        return f'{fmt} {export_model(model, work_dir / filename, fmt, **cfg)}'

    @staticmethod
    def _has_test_views(runner) -> bool:
        dataset = getattr(getattr(runner, 'data', None), 'dataset', None)
        test = getattr(dataset, 'test', None)
        try:
            return test is not None and len(test) > 0
        except TypeError:
            return True
