"""Progress and log lines: a rich progress bar on a TTY, plain lines otherwise."""

from __future__ import annotations

import resource
import sys
import time
from collections import deque

import torch
from mmengine.hooks import Hook

from ...registry import HOOKS


def _scalar(value) -> float | None:
    if torch.is_tensor(value) and value.numel() == 1:
        return float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


@HOOKS.register_module()
class LoggerHook(Hook):
    """Log losses, PSNR, Gaussian count, learning rates, it/s and ETA.

    Every ``interval`` steps: a log line (file and console when not on a TTY) and scalars to
    the visualizer backends. On a TTY a rich progress bar is refreshed every step.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, interval: int = 50, progress_bar: bool | None = None,
                 window: int = 20) -> None:
        self.interval = max(1, int(interval))
        self.progress_bar = progress_bar
        self._times: deque[float] = deque(maxlen=window)
        self._progress = None
        self._task = None
        self._t_last = None
        self._eval: tuple | None = None  # (progress, task, owns the progress) of val/test

    # ---------------------------------------------------------------- helpers
    def _use_progress(self, runner) -> bool:
        if getattr(runner, 'rank', 0) != 0:
            return False
        return sys.stdout.isatty() if self.progress_bar is None else bool(self.progress_bar)

    @staticmethod
    def _learning_rates(runner) -> dict[str, float]:
        groups = getattr(runner.optimizer, 'param_groups', None) or []
        return {f"lr/{g.get('name', i)}": float(g['lr']) for i, g in enumerate(groups)
                if 'lr' in g}

    def _collect(self, runner, outputs) -> dict[str, float]:
        scalars = {}
        for key, value in (outputs or {}).items():
            v = _scalar(value)
            if v is not None:
                scalars[f'train/{key}'] = v
        n = getattr(runner.model, 'num_gaussians', None)
        if n is not None:
            scalars['train/num_gaussians'] = float(n)
        return scalars

    # ---------------------------------------------------------------- stages
    @staticmethod
    def _new_progress():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        progress = Progress(
            TextColumn('[bold]{task.description}'), BarColumn(), MofNCompleteColumn(),
            TextColumn('{task.fields[info]}'), TimeElapsedColumn(), TimeRemainingColumn(),
            transient=False, refresh_per_second=4)
        progress.start()
        return progress

    def before_train(self, runner) -> None:
        self._t_last = time.perf_counter()
        if self._use_progress(runner):
            self._progress = self._new_progress()
            self._task = self._progress.add_task('train', total=runner.max_iters,
                                                 completed=runner.global_step, info='')

    # validation and test get a bar of their own (below the train bar while training)
    def _eval_begin(self, runner, mode: str) -> None:
        if not self._use_progress(runner):
            return
        loop = getattr(runner, f'{mode}_loop', None)
        split = getattr(getattr(runner, 'scene', None), getattr(loop, 'split', mode), None)
        try:
            total = len(split) if split is not None else None
        except TypeError:
            total = None
        progress = self._progress or self._new_progress()
        task = progress.add_task(f'{mode} @ step {runner.global_step}', total=total, info='')
        self._eval = (progress, task, progress is not self._progress)

    def _eval_advance(self) -> None:
        if self._eval is not None:
            self._eval[0].advance(self._eval[1])

    def _eval_end(self, metrics) -> None:
        if self._eval is None:
            return
        progress, task, owned = self._eval
        text = ' '.join(f'{k} {v:.4f}' for k, v in (metrics or {}).items())
        progress.update(task, info=text)
        if owned:
            progress.stop()
        else:
            progress.remove_task(task)
        self._eval = None

    def before_val_epoch(self, runner) -> None:
        self._eval_begin(runner, 'val')

    def before_test_epoch(self, runner) -> None:
        self._eval_begin(runner, 'test')

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._eval_advance()

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._eval_advance()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        now = time.perf_counter()
        self._times.append(now - self._t_last)
        self._t_last = now
        step = runner.global_step
        due = step % self.interval == 0 or step == runner.max_iters
        if self._progress is None and not due:
            return
        scalars = self._collect(runner, outputs)
        it_s = len(self._times) / max(sum(self._times), 1e-9)
        info = f"loss {scalars.get('train/loss', float('nan')):.4f}"
        if 'train/psnr' in scalars:
            info += f" psnr {scalars['train/psnr']:.2f}"
        if 'train/num_gaussians' in scalars:
            info += f" GS {int(scalars['train/num_gaussians']):,}"
        info += f' {it_s:.2f} it/s'
        if self._progress is not None:
            self._progress.update(self._task, completed=step, info=info)
        if due:
            eta = (runner.max_iters - step) / max(it_s, 1e-9)
            lrs = self._learning_rates(runner)
            runner.logger.info(f'step {step}/{runner.max_iters} {info} eta {eta:.0f}s')
            scalars.update(lrs)
            scalars['train/it_per_s'] = it_s
            scalars['train/step_time_s'] = 1.0 / max(it_s, 1e-9)
            scalars['memory/peak_rss_mb'] = resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss / 1024
            if runner.device.type == 'cuda':
                scalars['memory/cuda_peak_mb'] = torch.cuda.max_memory_allocated(
                    runner.device) / 2**20
            runner.log_scalars(scalars, step=step)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._eval_end(metrics)
        if not metrics:
            return
        text = ' '.join(f'{k} {v:.4f}' for k, v in metrics.items())
        runner.logger.info(f'val @ step {runner.global_step}: {text}')
        runner.log_scalars({f'val/{k}': v for k, v in metrics.items()})

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._eval_end(metrics)
        if metrics:
            text = ' '.join(f'{k} {v:.4f}' for k, v in metrics.items())
            runner.logger.info(f'test @ step {runner.global_step}: {text}')

    def after_train(self, runner) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def after_run(self, runner) -> None:
        self.after_train(runner)
