"""Cost of the first training steps against later ones, and quality at a fixed step count.

Trains a config (with ``--variant`` overrides, as in ``tune_on_val.py``) for ``--steps``
steps and records per step the wall time, the process CPU time, the rasterizer's tile
intersections and alpha evaluations per pixel (the CPU backend's forward counters, which do
not depend on the machine's load). Prints, per variant, the mean over the first ``--early``
steps divided by the mean over the last ``--late`` steps, then scores the validation views
(the test views are never rendered). One JSON line per variant to stdout and ``--out``.
With ``--steps 0`` only the start is measured: the counters of every 10th training view
rendered from the initial Gaussians (seconds per variant, no training).

    python benchmarks/fast_start.py configs/gaussian_splatting/blender_short.py --steps 600 \\
        --variant current:model.random_min_views=0.0,model.init_max_radius=None \\
        --variant shipped: --out work_dirs/fast_start.jsonl
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from mmengine.hooks import Hook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixed_steps import emit_record  # noqa: E402
from tune_on_val import iter_variants  # noqa: E402

from nerfreg.engine import DefaultTrainer  # noqa: E402
from nerfreg.ops import rasterize_cpu  # noqa: E402
from nerfreg.utils.config import load_config  # noqa: E402


class StepCostHook(Hook):
    """Wall / CPU time and rasterizer counters of every training step."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.rows: list[tuple[float, float, int, float]] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._t = (time.perf_counter(), time.process_time())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        wall, cpu = time.perf_counter() - self._t[0], time.process_time() - self._t[1]
        s = rasterize_cpu.LAST_FORWARD_STATS
        per_px = s.get('alpha_evals', 0) / max(s.get('pixels', 1), 1)
        self.rows.append((wall, cpu, int(s.get('isects', 0)), per_px))


def ratio(rows: list, col: int, early: int, late: int) -> float:
    """Mean of column ``col`` over steps 1..early-1 (step 0 holds one-off compilation)
    over its mean over the last ``late`` steps."""
    a = statistics.fmean(r[col] for r in rows[1:early])
    b = statistics.fmean(r[col] for r in rows[-late:])
    return round(a / max(b, 1e-12), 3)


@torch.no_grad()
def start_counters(trainer, every: int = 10) -> dict:
    """Rasterizer counters of every ``every``-th training view at the initial state."""
    model, data = trainer.model, trainer.data
    n = len(data.dataset.train)
    isects, per_px, visible = [], [], []
    for i in range(0, n, every):
        batch = data.make_batch('train', torch.tensor([i]))
        results = trainer.renderer(model(batch), batch)
        s = rasterize_cpu.LAST_FORWARD_STATS
        isects.append(s['isects'])
        per_px.append(s['alpha_evals'] / s['pixels'])
        visible.append(int((results['meta']['radii'].reshape(-1) > 0).sum()))
    return dict(views=len(isects), start_isects=round(statistics.fmean(isects)),
                start_evals_px=round(statistics.fmean(per_px), 1),
                start_visible=round(statistics.fmean(visible)))


def run(config: str, steps: int, seed: int, overrides: dict, work_dir: Path, early: int,
        late: int) -> dict:
    cfg = load_config(config)
    cfg.merge_from_dict({
        'train_cfg.max_steps': steps, 'train_cfg.val_interval': 0, 'custom_hooks': [],
        'default_hooks.checkpoint': None, 'default_hooks.logger.interval': 50,
        'seed': seed, 'work_dir': str(work_dir), 'device': 'cpu',
        'renderer.backend': 'cpu', **overrides})
    trainer = DefaultTrainer.from_cfg(cfg)
    start = start_counters(trainer)
    if steps == 0:
        return dict(gaussians=int(trainer.model.num_gaussians), **start)
    hook = StepCostHook()
    trainer.register_hook(hook)
    trainer.train()
    rows = hook.rows
    val = trainer.validation()
    return dict(
        **start, steps=trainer.global_step, gaussians=int(trainer.model.num_gaussians),
        val_psnr=round(float(val['psnr']), 4), val_ssim=round(float(val['ssim']), 4),
        early=early, late=late,
        wall_ratio=ratio(rows, 0, early, late), cpu_ratio=ratio(rows, 1, early, late),
        isects_ratio=ratio(rows, 2, early, late), evals_ratio=ratio(rows, 3, early, late),
        evals_px_first=round(rows[0][3], 1), evals_px_last=round(rows[-1][3], 1),
        cpu_s_early=round(statistics.fmean(r[1] for r in rows[1:early]), 4),
        cpu_s_late=round(statistics.fmean(r[1] for r in rows[-late:]), 4),
        train_cpu_s=round(sum(r[1] for r in rows), 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('config')
    ap.add_argument('--steps', type=int, default=1000)
    ap.add_argument('--early', type=int, default=None, help='default: half of --steps')
    ap.add_argument('--late', type=int, default=None, help='default: a fifth of --steps')
    ap.add_argument('--seeds', default='0')
    ap.add_argument('--set', nargs='*', default=[], help='overrides for every variant')
    ap.add_argument('--variant', action='append', default=[],
                    help='NAME:key=value[,key=value...] (NAME: alone is the config as is)')
    ap.add_argument('--out', type=Path, default=None)
    ap.add_argument('--work-dir', type=Path, default=Path('work_dirs/fast_start'))
    args = ap.parse_args()
    early = args.early or max(2, args.steps // 2)
    late = args.late or max(1, args.steps // 5)
    if 0 < args.steps < early + 1:
        ap.error(f'--steps {args.steps} must exceed --early {early}')
    for seed, name, over in iter_variants(args.seeds, args.set, args.variant):
        rec = dict(config=args.config, variant=name, seed=seed, overrides=over,
                   **run(args.config, args.steps, seed, over, args.work_dir / name, early, late))
        emit_record(rec, args.out)


if __name__ == '__main__':
    main()
