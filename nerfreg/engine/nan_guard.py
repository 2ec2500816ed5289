"""The NaN/Inf guard of the train step (``train_cfg.nan_guard``)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from .errors import NonFiniteError
from .interfaces import GradientResettable, StepAware


class NaNGuard:
    """Skip a step whose loss or gradient is not finite; stop after ``max_consecutive`` bad
    steps in a row (the latest checkpoint still holds the last good state)."""

    def __init__(self, max_consecutive: int = 10, **unused: Any) -> None:
        self.max_consecutive = int(max_consecutive)
        self.bad_steps = 0

    def good_step(self) -> None:
        self.bad_steps = 0

    def skip(self, reason: str, step: int, model: torch.nn.Module, optimizer: Any,
             warn: Callable[[str], None]) -> dict:
        """Drop this update (``step`` is the 0-based index of the step being skipped)."""
        model.zero_grad(set_to_none=True)
        if isinstance(model, StepAware):  # step-driven schedules (SH degree) move on
            model.set_step(step + 1)
        if isinstance(optimizer, GradientResettable):
            optimizer.zero_grad()
        self.bad_steps += 1
        warn(f'step {step + 1}: {reason}; update skipped '
             f'({self.bad_steps}/{self.max_consecutive} consecutive).')
        if self.bad_steps >= self.max_consecutive:
            raise NonFiniteError(
                f'{self.bad_steps} consecutive steps had a non-finite loss or gradient (last: '
                f'{reason}) at step {step + 1}. The last good state is in the latest '
                'checkpoint; lower the learning rates or check the data, then resume.')
        return {'loss': torch.tensor(float('nan')), 'skipped': True}
