"""Step-indexed learning-rate schedulers on named param groups.

The lr is a function of the step (never accumulated), so ``state_dict`` only stores the
step and resume is exact. ``step()`` is called once after every training step; at
construction the lr of step 0 is applied.
"""

from __future__ import annotations

import math
from typing import Any

from nerfreg.registry import PARAM_SCHEDULERS


class StepLRScheduler:
    """Base: ``lr = self.lr_at(step, base_lr)`` on the groups named in ``groups``."""

    by_epoch = False

    def __init__(self, optimizer: Any, groups: list[str] | None = None,
                 last_step: int = 0) -> None:
        self.optimizer = optimizer
        names = [g.get('name') for g in optimizer.param_groups]
        if groups is not None:
            missing = [g for g in groups if g not in names]
            if missing:
                raise ValueError(f'{type(self).__name__}: unknown param groups {missing}; '
                                 f'known {names}')
        self.groups = list(groups) if groups is not None else names
        self.base_lrs = {g['name']: float(g.get('initial_lr', g['lr']))
                         for g in optimizer.param_groups if g.get('name') in self.groups}
        self.last_step = int(last_step)
        self._apply()

    def lr_at(self, step: int, base_lr: float) -> float:
        raise NotImplementedError

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            name = group.get('name')
            if name in self.base_lrs:
                group['lr'] = self.lr_at(self.last_step, self.base_lrs[name])

    def step(self) -> None:
        """Advance one training step."""
        self.last_step += 1
        self._apply()

    def set_step(self, step: int) -> None:
        """Jump to ``step`` (e.g. when resuming without a scheduler state)."""
        self.last_step = int(step)
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g['lr'] for g in self.optimizer.param_groups if g.get('name') in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        return dict(last_step=self.last_step, base_lrs=dict(self.base_lrs))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_lrs = dict(state_dict['base_lrs'])
        self.last_step = int(state_dict['last_step'])
        self._apply()


@PARAM_SCHEDULERS.register_module()
class ExponentialDecayLR(StepLRScheduler):
    """Log-linear decay from the group's initial lr to ``final_ratio`` times it (or
    ``lr_final``) over ``max_steps`` (3DGS ``means`` schedule: 1.6e-4 -> 1.6e-6 x extent).

    Optional 3DGS-style delay: for ``delay_steps`` the lr is scaled by a factor rising
    from ``delay_mult`` to 1 along a half sine.
    """

    def __init__(self, optimizer: Any, groups: list[str] | None = ('means',),
                 max_steps: int = 30_000, final_ratio: float = 0.01,
                 lr_final: float | None = None, delay_steps: int = 0,
                 delay_mult: float = 1.0, last_step: int = 0) -> None:
        if max_steps <= 0:
            raise ValueError('ExponentialDecayLR: max_steps must be positive')
        self.max_steps = int(max_steps)
        self.final_ratio = float(final_ratio)
        self.lr_final = lr_final
        self.delay_steps = int(delay_steps)
        self.delay_mult = float(delay_mult)
        super().__init__(optimizer, list(groups) if groups is not None else None, last_step)

    def lr_at(self, step: int, base_lr: float) -> float:
        final = self.lr_final if self.lr_final is not None else base_lr * self.final_ratio
        if base_lr <= 0 or final <= 0:
            return 0.0
        t = min(max(step / self.max_steps, 0.0), 1.0)
        lr = math.exp((1 - t) * math.log(base_lr) + t * math.log(final))
        if self.delay_steps > 0:
            lr *= self.delay_mult + (1 - self.delay_mult) * math.sin(
                0.5 * math.pi * min(max(step / self.delay_steps, 0.0), 1.0))
        return lr
