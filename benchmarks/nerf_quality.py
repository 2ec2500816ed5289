"""Radiance-field (or any config's) quality at fixed step counts, plus what each step trained on.

Trains a config and, at each of ``--evals`` step counts, scores a fixed subset of views of
``--split`` (``--views``: every k-th view, or all). Quality at fixed step counts does not
depend on the machine's load, so these runs may be niced. For ray-batch methods it also
records, per logging window, the rays the renderer kept per step and the samples per ray
(the ``rays`` / ``samples_per_ray`` entries of the loss dict). One JSON line per evaluation
goes to stdout and ``--out``. ``--minutes`` evaluates when the training time (all time
outside evaluations) passes each budget and stops after the last; such times mean something
only on an idle machine. ``--save`` keeps the final model, ``--eval-only`` scores it later
(e.g. on all 200 test views, niced, after a timed run).

    python benchmarks/nerf_quality.py configs/nerf/blender.py --evals 500,1000,2000,3000 \
        --split val --views 10 --out /tmp/nerfq/blender_val.jsonl \
        --cfg-options data.data_root=../shared/data/mic data.downscale=2
    python benchmarks/nerf_quality.py configs/nerf/blender.py --split test --views 1 \
        --eval-only /tmp/nerf_quality/final.pth --cfg-options data.data_root=...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from mmengine.config import DictAction
from mmengine.hooks import Hook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

START = time.perf_counter()  # process start (imports done): cold-start wall times

from nerfreg.engine import DefaultTrainer  # noqa: E402
from nerfreg.utils.config import load_config  # noqa: E402


@torch.no_grad()
def score_views(trainer, split: str, every: int, offset: int = 0,
                per_view: Path | None = None, limit: int = 0) -> dict[str, float]:
    """Mean psnr/ssim over views ``offset, offset + every, ...`` of ``split`` (each view's
    scores also appended to ``per_view`` as it is done, so a cut-short run keeps them)."""
    model = trainer.model
    model.eval()
    n = len(trainer.data.dataset.split(split))
    sums: dict[str, float] = defaultdict(float)
    idx = list(range(offset, n, every))[:limit or None]
    for i in idx:
        batch = trainer.data.make_batch(split, torch.tensor([i]))
        out = trainer.renderer(model(batch), batch)
        scores = {k: float(torch.as_tensor(v).double().mean())
                  for k, v in model.get_metric_dict(out, batch).items()}
        for k, v in scores.items():
            sums[k] += v
        if per_view is not None:
            emit(dict(split=split, view=i, **scores), per_view, echo=False)
    model.train()
    return {k: v / len(idx) for k, v in sums.items()} | {'n_views': len(idx)}


class QualityHook(Hook):
    """Scores views at step counts, at budgets of training time and at the end; records the
    training time (all time outside evaluations) and the ray statistics of each window."""

    priority = 'LOWEST'

    def __init__(self, evals: list[int], minutes: list[float], split: str, every: int,
                 out: Path | None, label: str, defer_to: Path | None = None) -> None:
        self.evals, self.minutes = set(evals), sorted(minutes)
        self.defer_to = defer_to
        self.stop_at_last_budget = bool(minutes)
        self.split, self.every, self.out, self.label = split, every, out, label
        self.train_s = 0.0
        self.window: dict[str, list[float]] = defaultdict(list)
        self._t0 = 0.0

    def before_train(self, runner) -> None:
        self._t0 = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.train_s += time.perf_counter() - self._t0
        for key in ('rays', 'samples_per_ray', 'occupancy', 'psnr'):
            if outputs and key in outputs:
                self.window[key].append(float(outputs[key]))
        step = runner.global_step
        budget = None
        while self.minutes and self.train_s >= 60 * self.minutes[0]:
            budget = self.minutes.pop(0)
        if step in self.evals or budget is not None or step == runner.max_steps:
            self._record(runner, step, budget)
        if self.stop_at_last_budget and not self.minutes:
            runner.stop_training = True
        self._t0 = time.perf_counter()  # evaluation time is not training time

    def _record(self, runner, step: int, budget: float | None) -> None:
        rec = dict(label=self.label, step=step, train_seconds=round(self.train_s, 1),
                   wall_seconds=round(time.perf_counter() - START, 1),
                   budget_minutes=budget, split=self.split, every=self.every)
        rec.update({f'mean_{k}': sum(v) / len(v) for k, v in self.window.items() if v})
        if self.window.get('rays'):
            rec['min_rays'] = min(self.window['rays'])
        self.window.clear()
        num = getattr(runner.model, 'num_gaussians', None)
        if num is not None:
            rec['num_gaussians'] = int(num)
        t = time.perf_counter()
        if self.defer_to is not None:  # timed runs: keep the model, score it later
            self.defer_to.mkdir(parents=True, exist_ok=True)
            rec['model'] = str(runner.save_model(self.defer_to / f'step{step}.pth'))
        else:
            rec.update(score_views(runner, self.split, self.every))
        rec['eval_seconds'] = round(time.perf_counter() - t, 1)
        emit(rec, self.out)


def load_model(trainer, path: str) -> None:
    """A nerfreg checkpoint (``--defer-eval``, ``--save``, tools/train.py) or a bare model
    state dict."""
    state = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(state, dict) and 'format' in state:
        trainer.load_model(path, resume=False)
    else:
        trainer.model.load_state_dict(state)


def emit(record: dict, out: Path | None, echo: bool = True) -> None:
    line = json.dumps(record)
    if echo:
        print(line, flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open('a') as f:
            f.write(line + '\n')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--evals', default='', help='comma-separated step counts')
    parser.add_argument('--minutes', default='',
                        help='comma-separated budgets of training time (minutes); training '
                             'stops after the last (time them on an idle machine only)')
    parser.add_argument('--split', default='val', choices=('val', 'test'))
    parser.add_argument('--views', type=int, default=10, help='score every k-th view')
    parser.add_argument('--offset', type=int, default=0,
                        help='first view scored (with --eval-only: parallel shards)')
    parser.add_argument('--limit', type=int, default=0,
                        help='with --eval-only: score at most this many views (0: all)')
    parser.add_argument('--per-view', type=Path, default=None,
                        help='with --eval-only: append each view\'s scores here as it is done')
    parser.add_argument('--steps', type=int, default=None,
                        help='override the schedule length (scales param schedulers)')
    parser.add_argument('--label', default=None)
    parser.add_argument('--work-dir', default='/tmp/nerf_quality')
    parser.add_argument('--out', type=Path, default=None)
    parser.add_argument('--save', action='store_true', help='keep the final checkpoint')
    parser.add_argument('--defer-eval', action='store_true',
                        help='save the model at each evaluation point instead of scoring it '
                             '(for timed runs; score with --eval-only later)')
    parser.add_argument('--eval-only', metavar='MODEL_PTH',
                        help='no training: score a model saved by --save')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    cfg = load_config(args.config)
    cfg.merge_from_dict({'train_cfg.val_interval': 0, 'custom_hooks': [],
                         'work_dir': args.work_dir, 'default_hooks.logger.interval': 100})
    if not args.save:
        cfg.merge_from_dict({'default_hooks.checkpoint': None})
    if args.steps:
        cfg.merge_from_dict({'train_cfg.max_steps': args.steps})
        for sched in cfg.get('param_scheduler') or []:
            if 'max_steps' in sched:
                sched['max_steps'] = args.steps
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    evals = [int(v) for v in args.evals.split(',') if v]
    minutes = [float(v) for v in args.minutes.split(',') if v]
    trainer = DefaultTrainer.from_cfg(cfg)
    if args.eval_only:
        load_model(trainer, args.eval_only)
        t = time.perf_counter()
        rec = dict(label=args.label or Path(args.config).stem, model=args.eval_only,
                   split=args.split, every=args.views, offset=args.offset,
                   **score_views(trainer, args.split, args.views, args.offset,
                                 args.per_view, args.limit))
        emit(rec | {'eval_seconds': round(time.perf_counter() - t, 1)}, args.out)
        return
    trainer.register_hook(QualityHook(evals, minutes, args.split, args.views, args.out,
                                      args.label or Path(args.config).stem,
                                      Path(args.work_dir) if args.defer_eval else None))
    trainer.train()
    if args.save:
        print(f"saved {trainer.save_model(Path(args.work_dir) / 'final.pth')}", flush=True)


if __name__ == '__main__':
    main()
