"""Steps every parameter scheduler after each training step."""

from __future__ import annotations

from mmengine.hooks import Hook

from ...registry import HOOKS


@HOOKS.register_module()
class ParamSchedulerHook(Hook):
    """Call ``scheduler.step()`` for each of ``runner.param_schedulers`` after a step."""

    priority = 'LOW'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        for scheduler in runner.param_schedulers:
            scheduler.step()
