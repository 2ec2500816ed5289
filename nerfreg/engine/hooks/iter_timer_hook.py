"""Times data loading and each step; publishes ``train/time`` and ``train/data_time``."""

from __future__ import annotations

import time

from mmengine.hooks import Hook

from ...registry import HOOKS


@HOOKS.register_module()
class IterTimerHook(Hook):
    """Step timer feeding the message hub (read by the logger for it/s and ETA)."""

    priority = 'NORMAL'

    def __init__(self) -> None:
        self._t_end = None
        self._t_start = None

    def before_train(self, runner) -> None:
        self._t_end = time.perf_counter()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._t_start = time.perf_counter()
        if self._t_end is not None:
            runner.message_hub.update_scalar('train/data_time', self._t_start - self._t_end)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        now = time.perf_counter()
        runner.message_hub.update_scalar('train/time', now - (self._t_start or now))
        self._t_end = now
