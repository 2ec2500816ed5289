"""Compare config variants at a fixed step count by their score on the VALIDATION views.

The test views are never rendered here: tuning reads only the val split (every
``val_every``-th non-test view, held out of training; see ``ColmapDataset``). Each variant is
a set of ``--cfg-options``-style overrides applied on top of the config and of the common
``--set`` overrides; each (variant, seed) run prints and appends one JSON line.

    python benchmarks/tune_on_val.py configs/gaussian_splatting/colmap_short.py --steps 2000 \
        --set data.downscale=4 --variant base: --variant cap80k:optimizer.strategy.cap_max=80000 \
        --seeds 0 --out work_dirs/tune_cup.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixed_steps import emit_record  # noqa: E402

from nerfreg.engine import DefaultTrainer  # noqa: E402
from nerfreg.utils.config import load_config  # noqa: E402


def parse_overrides(items: list[str]) -> dict:
    """['a.b=1', 'c=x'] -> {'a.b': 1, 'c': 'x'} (values parsed as Python literals if they can)."""
    import ast
    out = {}
    for item in items:
        if not item:
            continue
        key, _, value = item.partition('=')
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def run(config: str, steps: int, seed: int, overrides: dict, work_dir: Path) -> dict:
    cfg = load_config(config)
    cfg.merge_from_dict({
        'train_cfg.max_steps': steps, 'train_cfg.val_interval': 0, 'custom_hooks': [],
        'default_hooks.checkpoint': None, 'default_hooks.logger.interval': 500,
        'param_scheduler': [dict(type='ExponentialDecayLR', groups=['means'], max_steps=steps,
                                 final_ratio=0.01)],
        'seed': seed, 'work_dir': str(work_dir), 'device': 'cpu', **overrides})
    trainer = DefaultTrainer.from_cfg(cfg)
    if len(trainer.data.dataset.val) == 0:
        raise SystemExit('the config has no val views: set data.val_every (e.g. 8)')
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    val = trainer.validation()
    return dict(steps=trainer.global_step, gaussians=int(trainer.model.num_gaussians),
                val_psnr=round(float(val['psnr']), 4), val_ssim=round(float(val['ssim']), 4),
                val_views=len(trainer.data.dataset.val), train_s=round(train_s, 1))


def iter_variants(seeds: str, common: list[str], variants: list[str]):
    """``(seed, name, overrides)`` for every seed of ``'0,1'`` and every ``NAME:k=v,...``
    variant (``base:`` when none), each on top of the ``common`` overrides."""
    shared = parse_overrides(common)
    for seed in [int(s) for s in seeds.split(',')]:
        for spec in variants or ['base:']:
            name, _, rest = spec.partition(':')
            yield seed, name, {**shared, **parse_overrides(rest.split(','))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('config')
    ap.add_argument('--steps', type=int, default=2000)
    ap.add_argument('--seeds', default='0', help='comma-separated')
    ap.add_argument('--set', nargs='*', default=[], help='overrides for every variant')
    ap.add_argument('--variant', action='append', default=[],
                    help='NAME:key=value[,key=value...] (NAME: alone is the config as is)')
    ap.add_argument('--out', type=Path, default=None)
    ap.add_argument('--work-dir', type=Path, default=Path('work_dirs/tune_on_val'))
    args = ap.parse_args()
    for seed, name, over in iter_variants(args.seeds, args.set, args.variant):
        rec = dict(config=args.config, variant=name, seed=seed, overrides=over,
                   **run(args.config, args.steps, seed, over, args.work_dir / name))
        emit_record(rec, args.out)


if __name__ == '__main__':
    main()
