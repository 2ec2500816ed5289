"""SIGINT/SIGTERM handling: finish the step, agree on a stop across ranks, checkpoint.

The handler only counts requests; the train loop asks :meth:`InterruptHandler.agreed` after
each step. Distributed, the request travels in the step's gradient all-reduce (see
``DefaultTrainer.train_step``), so every rank stops after the same step even if only one
was signalled. The checkpoint is asked of the hooks through the ``on_checkpoint_request``
event (``CheckpointHook`` answers it); the trainer writes one itself when no hook does.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .dist import barrier
from .errors import TrainingInterrupted


@dataclass
class CheckpointRequest:
    """Passed to hooks' ``on_checkpoint_request``; the hook that saves sets ``path``."""

    reason: str
    path: Path | None = None


class InterruptHandler:
    """Counts SIGINT/SIGTERM; a second SIGINT raises ``KeyboardInterrupt`` at once."""

    def __init__(self, warn: Callable[[str], None], current_step: Callable[[], int]) -> None:
        self.requested = 0  # signals received by this process
        self.everywhere = False  # a rank was signalled (set from the step's all-reduce)
        self._warn = warn
        self._current_step = current_step

    def _handle(self, signum: int, frame) -> None:  # noqa: ARG002
        self.requested += 1
        if self.requested > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self._warn(f'Received {signal.Signals(signum).name}: finishing step '
                   f'{self._current_step() + 1}, then saving a checkpoint (Ctrl-C again to '
                   'abort now).')

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Install the handlers for the duration (main thread only), then restore."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._handle)
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def agreed(self, world_size: int) -> bool:
        """Stop after this step? Distributed: if any rank was signalled."""
        return self.everywhere if world_size > 1 else self.requested > 0


def save_checkpoint_now(runner: Any, reason: str) -> Path:
    """Checkpoint the current step: the hooks' ``on_checkpoint_request`` event first
    (``CheckpointHook`` keeps its naming and retention), else ``iter_<step>.pth``."""
    request = CheckpointRequest(reason)
    runner.call_hook('on_checkpoint_request', request=request)
    if request.path is None:
        request.path = runner.save_model(Path(runner.work_dir) / f'iter_{runner.global_step}.pth')
    return request.path


def stop_on_interrupt(runner: Any) -> None:
    """After an agreed SIGINT/SIGTERM: checkpoint, log the resume command, raise
    ``TrainingInterrupted`` (exit status 130)."""
    path = save_checkpoint_now(runner, 'interrupt')
    barrier()  # no rank leaves (and makes torchrun stop the others) before the file exists
    runner.logger.warning(f'Interrupted at step {runner.global_step}; checkpoint {path}. '
                          'Resume with: python tools/train.py CONFIG --resume '
                          f'--work-dir {runner.work_dir}')
    raise TrainingInterrupted(runner.global_step, path)
