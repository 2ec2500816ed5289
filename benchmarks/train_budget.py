"""Held-out PSNR versus training time for a config, measured like the peer loop.

Training time is the sum of step times (data, forward, backward, update, densification);
start-up, evaluations and first-run kernel compiles are excluded, as in
../shared/bench/gsplat_ref_train.py (whose PyTorch loop compiles nothing). At each
budget the test split (every 8th image) is rendered and scored; training stops at the last.

    python benchmarks/train_budget.py configs/gaussian_splatting/colmap_short.py \
        --evals 60,120,300,600 --out work_dirs/cup_curve.jsonl
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from mmengine.config import DictAction
from mmengine.hooks import Hook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfreg.engine import DefaultTrainer  # noqa: E402
from nerfreg.utils.compile_notice import CompileFreeTimer, compile_seconds  # noqa: E402
from nerfreg.utils.config import load_config  # noqa: E402


class BudgetEvalHook(Hook):
    """Scores the test split each time accumulated training time passes a budget."""

    priority = 'LOWEST'

    def __init__(self, budgets: list[float], out: Path | None) -> None:
        self.budgets = sorted(budgets)
        self.out = out
        self.train_time = 0.0
        self.records: list[dict] = []
        self._clock = CompileFreeTimer()

    def before_train(self, runner) -> None:
        self._clock.start()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.train_time += self._clock.elapsed()
        while self.budgets and self.train_time >= self.budgets[0]:
            self._record(runner, self.budgets.pop(0))
        if not self.budgets:
            runner.stop_training = True
        self._clock.start()  # evaluation time is not training time

    def after_train(self, runner) -> None:
        if self.budgets:  # the schedule ended before the last budget: score the end state
            self._record(runner, 'end')

    def _record(self, runner, budget) -> None:
        metrics = runner.test()
        runner.model.train()
        record = dict(budget_s=budget, train_s=round(self.train_time, 1),
                      compile_s=round(compile_seconds(), 1), step=runner.global_step,
                      gaussians=int(runner.model.num_gaussians),
                      psnr=round(metrics['psnr'], 3), ssim=round(metrics['ssim'], 4),
                      peak_rss_mb=round(resource.getrusage(
                          resource.RUSAGE_SELF).ru_maxrss / 1024))
        self.records.append(record)
        print(json.dumps(record), flush=True)
        if self.out:
            with open(self.out, 'a') as f:
                f.write(json.dumps(record) + '\n')

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--evals', default='60,120,300,600')
    parser.add_argument('--out', type=Path)
    parser.add_argument('--work-dir', default='work_dirs/train_budget')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = load_config(args.config, args.cfg_options)
    cfg.work_dir = args.work_dir
    cfg.train_cfg.val_interval = 0
    cfg.default_hooks.checkpoint = None
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', [])
                        if h.get('type') not in ('FinalExportHook', 'VisualizationHook')]
    budgets = [float(x) for x in args.evals.split(',') if x]
    t0 = time.perf_counter()
    trainer = DefaultTrainer.from_cfg(cfg)
    hook = BudgetEvalHook(budgets, args.out)
    trainer.register_hook(hook)
    print(json.dumps(dict(kind='startup', seconds=round(time.perf_counter() - t0, 1),
                          config=args.config)), flush=True)
    trainer.train()
    print('| budget | steps | Gaussians | held-out PSNR | SSIM |')
    print('|---|---|---|---|---|')
    for r in hook.records:
        print(f"| {r['budget_s']} s | {r['step']} | {r['gaussians']:,} | {r['psnr']:.2f} | "
              f"{r['ssim']:.3f} |")


if __name__ == '__main__':
    main()
