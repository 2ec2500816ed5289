"""Train a config for a fixed number of steps, then score the test split (held-out views).

Quality at fixed step counts does not depend on the machine, so method comparisons made
with it (MCMC vs default densification, random vs SfM init) hold on any CPU. The whole
schedule (``train_cfg.max_steps``, every param scheduler's ``max_steps``, and the
strategy's ``refine_stop`` as a fraction of the steps) is scaled to ``--steps``. One JSON
line per run goes to stdout and to ``--out`` (appended).

    python benchmarks/fixed_steps.py configs/gaussian_splatting/colmap_short_mcmc.py \
        --steps 3000 --seed 1 --out work_dirs/mcmc_vs_default.jsonl
    python benchmarks/fixed_steps.py --summarize work_dirs/mcmc_vs_default.jsonl

``--summarize`` prints one markdown row per label: test PSNR per seed, their mean and
sample standard deviation, mean SSIM and mean validation PSNR (runs scored with
``--score both``). Each record also holds every scored view's PSNR by image name
(``view_psnr``), so a mean moved by one view shows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from mmengine.config import DictAction
from mmengine.hooks import Hook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfreg.engine import DefaultTrainer  # noqa: E402
from nerfreg.utils.config import load_config  # noqa: E402


class PerViewPSNR(Hook):
    """Collects each scored view's PSNR by image name: ``views[split][name]``."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.views: dict[str, dict[str, float]] = defaultdict(dict)

    def _record(self, split: str, data_batch: dict, outputs: dict) -> None:
        psnr = outputs['metrics'].get('psnr')
        if psnr is None:
            return
        values = [float(v) for v in torch.as_tensor(psnr).flatten()]
        for name, value in zip(data_batch.get('name') or [], values):
            self.views[split][str(name)] = round(value, 3)

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._record('val', data_batch, outputs)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._record('test', data_batch, outputs)


def scale_schedule(cfg, steps: int) -> None:
    """Set ``train_cfg.max_steps`` and every param scheduler's ``max_steps`` to ``steps``."""
    cfg.merge_from_dict({'train_cfg.max_steps': steps})
    for sched in cfg.get('param_scheduler') or []:
        if 'max_steps' in sched:
            sched['max_steps'] = steps


def scaled_config(config: str, steps: int, seed: int, work_dir: str,
                  refine_stop_frac: float | None, options: dict | None):
    """The config with its schedule scaled to ``steps`` and no periodic outputs."""
    cfg = load_config(config)
    cfg.merge_from_dict({'train_cfg.val_interval': 0,
                         'seed': seed, 'work_dir': work_dir, 'custom_hooks': [],
                         'default_hooks.checkpoint.interval': 10 * steps,
                         'default_hooks.logger.interval': 250})
    scale_schedule(cfg, steps)
    if refine_stop_frac is not None:
        cfg.merge_from_dict({'optimizer.strategy.refine_stop': int(refine_stop_frac * steps)})
    if options:
        cfg.merge_from_dict(options)
    return cfg


def main(argv: list[str] | None = None) -> dict | None:
    """Train and score one run (its record is returned), or print a ``--summarize`` table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?')
    parser.add_argument('--summarize', type=Path, metavar='JSONL',
                        help='print the table of the runs in this file and exit')
    parser.add_argument('--steps', type=int)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--refine-stop-frac', type=float, default=None,
                        help='strategy.refine_stop as a fraction of --steps')
    parser.add_argument('--label', default=None)
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--out', type=Path, default=None)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--score', choices=('test', 'val', 'both'), default='test',
                        help="split(s) to score: tune on 'val', report 'test' once")
    args = parser.parse_args(argv)
    if args.summarize:
        print(summary_table(args.summarize))
        return None
    if args.config is None or args.steps is None:
        parser.error('a config and --steps are required to train')
    label = args.label or Path(args.config).stem
    work_dir = args.work_dir or f'work_dirs/fixed_steps/{label}_s{args.seed}'
    cfg = scaled_config(args.config, args.steps, args.seed, work_dir, args.refine_stop_frac,
                        args.cfg_options)
    trainer = DefaultTrainer.from_cfg(cfg)
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    per_view = PerViewPSNR()
    trainer.register_hook(per_view)
    metrics = {}
    if args.score in ('val', 'both'):
        metrics.update({f'val_{k}': v for k, v in trainer.validation().items()})
    if args.score in ('test', 'both'):
        metrics.update(trainer.test())
    record = dict(label=label, config=args.config, steps=args.steps, seed=args.seed,
                  options=args.cfg_options or {}, num_gaussians=trainer.model.num_gaussians,
                  train_seconds=round(train_s, 1),
                  **{k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
                  view_psnr=dict(per_view.views))
    emit_record(record, args.out)
    return record


def summary_table(path: Path) -> str:
    """Markdown table of the records in ``path``, one row per label in first-seen order."""
    runs: dict[str, list[dict]] = defaultdict(list)
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            runs[record['label']].append(record)
    rows = ['| label | steps | test PSNR per seed | mean +- sd | mean SSIM | mean val PSNR |',
            '|---|---:|---|---:|---:|---:|']
    for label, records in runs.items():
        records.sort(key=lambda r: r['seed'])
        psnr = [r['psnr'] for r in records if 'psnr' in r]
        val = [r['val_psnr'] for r in records if 'val_psnr' in r]
        ssim = [r['ssim'] for r in records if 'ssim' in r]
        per_seed = ', '.join(f"{r['psnr']:.2f} (s{r['seed']})" for r in records if 'psnr' in r)
        spread = f' +- {statistics.stdev(psnr):.2f}' if len(psnr) > 1 else ''
        mean = f'{statistics.fmean(psnr):.2f}{spread}' if psnr else '-'
        rows.append(f"| {label} | {records[0]['steps']} | {per_seed or '-'} | {mean} | "
                    f"{f'{statistics.fmean(ssim):.3f}' if ssim else '-'} | "
                    f"{f'{statistics.fmean(val):.2f}' if val else '-'} |")
    return '\n'.join(rows)


def emit_record(record: dict, out: Path | None) -> None:
    """Print ``record`` as one JSON line and append it to ``out`` when given."""
    line = json.dumps(record)
    print(line, flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open('a') as f:
            f.write(line + '\n')


if __name__ == '__main__':
    main()
