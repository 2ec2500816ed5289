"""Train, validation and test loops, registered in ``LOOPS`` and chosen by ``train_cfg``,
``val_cfg`` and ``test_cfg`` (``type`` optional; the defaults below).

The split of roles follows mmengine's ``Runner``/``loops``: a loop decides the order of
steps and which hook stages fire around them; the trainer owns the components, the state
(``global_step``, ``iter``), hook dispatch and the step itself (``trainer.train_step``).
A plugin defines its own training process by registering a loop and selecting it with
``train_cfg = dict(type='MyLoop', ...)``.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from typing import Any

import torch

from ..registry import LOOPS
from .dist import all_reduce_sum, barrier
from .interfaces import MetricProvider, require
from .interrupt import stop_on_interrupt


class BaseLoop:
    """A loop bound to a trainer; :meth:`run` does the work."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner

    @property
    def runner(self) -> Any:
        return self._runner

    def run(self) -> Any:
        raise NotImplementedError


@LOOPS.register_module()
class IterBasedTrainLoop(BaseLoop):
    """``max_steps`` train steps from ``runner.global_step``; validation every
    ``val_interval`` steps and after the last; stops early on an agreed interrupt (after a
    checkpoint) or when a hook sets ``runner.stop_training``."""

    def __init__(self, runner: Any, max_steps: int = 1000, val_interval: int = 0) -> None:
        super().__init__(runner)
        self.max_iters = int(max_steps)
        self.val_interval = int(val_interval or 0)

    def should_validate(self, step: int) -> bool:
        """Validate after ``step`` completed steps?"""
        if not self.val_interval:
            return False
        return step % self.val_interval == 0 or step == self.max_iters

    def run(self) -> torch.nn.Module:
        runner = self.runner
        runner.call_hook('before_train')
        runner.call_hook('before_train_epoch')
        with runner.interrupt.installed():
            for step in range(runner.global_step, self.max_iters):
                runner.iter = step
                batch = runner.data.next_train_batch()
                runner.call_hook('before_train_iter', batch_idx=step, data_batch=batch)
                outputs = runner.train_step(batch)
                runner.global_step = step + 1
                runner.call_hook('after_train_iter', batch_idx=step, data_batch=batch,
                                 outputs=outputs)
                if self.should_validate(runner.global_step):
                    runner.validation()
                if runner.interrupt.agreed(runner.world_size):
                    stop_on_interrupt(runner)
                if runner.stop_training:
                    break
            runner.iter = runner.global_step
        runner.call_hook('after_train_epoch')
        runner.call_hook('after_train')
        return runner.model


class _EvalLoop(BaseLoop):
    """Render every view of ``split`` in order (no gradients); average the model's metrics.

    Distributed, the pipeline shards the views across ranks; hooks see the global view
    index and the averages are over all ranks' views.
    """

    mode = ''

    def __init__(self, runner: Any, split: str | None = None) -> None:
        super().__init__(runner)
        self.split = split or self.mode

    def _render_kw(self, batch: dict[str, Any]) -> dict[str, Any]:
        """``render=`` for models whose ``get_metric_dict`` takes it: ``batch`` rendered again
        with render-input overrides (for test-time fits of the camera, e.g.)."""
        if 'render' not in inspect.signature(self.runner.model.get_metric_dict).parameters:
            return {}
        runner = self.runner

        def render(overrides: dict[str, Any]) -> dict[str, Any]:
            return runner.renderer({**runner.model(batch), **overrides}, batch)
        return {'render': render}

    @torch.no_grad()
    def run(self) -> dict[str, float]:
        runner, mode = self.runner, self.mode
        require(runner.model, MetricProvider, 'model')
        runner.model.eval()
        runner.call_hook(f'before_{mode}')
        runner.call_hook(f'before_{mode}_epoch')
        sums: dict[str, float] = defaultdict(float)
        count = 0
        batches = (runner.data.iter_split(self.split, shard=True) if runner.world_size > 1
                   else runner.data.iter_split(self.split))
        for local_idx, batch in enumerate(batches):
            idx = runner.rank + local_idx * runner.world_size
            runner.call_hook(f'before_{mode}_iter', batch_idx=idx, data_batch=batch)
            render_inputs = runner.model(batch)
            render_results = runner.renderer(render_inputs, batch)
            metrics = runner.model.get_metric_dict(render_results, batch, **self._render_kw(batch))
            views = 1
            for key, value in metrics.items():
                value = torch.as_tensor(value, dtype=torch.float64)
                sums[key] += float(value.sum())
                views = value.numel()
            count += views
            runner.call_hook(f'after_{mode}_iter', batch_idx=idx, data_batch=batch,
                             outputs=dict(render_results=render_results, metrics=metrics))
        if runner.world_size > 1:
            keys = sorted(sums)
            totals = all_reduce_sum(torch.tensor([sums[k] for k in keys] + [count],
                                                 dtype=torch.float64, device=runner.device))
            sums, count = dict(zip(keys, totals[:-1].tolist())), int(totals[-1])
        averaged = {k: v / max(count, 1) for k, v in sums.items()}
        runner.call_hook(f'after_{mode}_epoch', metrics=averaged)
        barrier()
        runner.call_hook(f'after_{mode}')
        runner.model.train()
        return averaged


@LOOPS.register_module()
class ValLoop(_EvalLoop):
    """Validation during training, on the pipeline's ``'val'`` split by default."""

    mode = 'val'


@LOOPS.register_module()
class TestLoop(_EvalLoop):
    """The final test, on the ``'test'`` split by default."""

    mode = 'test'


__all__ = ['BaseLoop', 'IterBasedTrainLoop', 'ValLoop', 'TestLoop']
