"""Cross-rank check that every process holds the same model (distributed runs only)."""

from __future__ import annotations

import torch
from mmengine.dist import all_gather
from mmengine.hooks import Hook

from ...registry import HOOKS
from ..dist import is_distributed


def model_fingerprint(model: torch.nn.Module) -> torch.Tensor:
    """``[number of parameter elements, float64 sum, float64 sum of squares]``."""
    total = torch.zeros(3, dtype=torch.float64)
    for p in model.parameters():
        data = p.detach().to(torch.float64)
        total += torch.stack([torch.tensor(float(p.numel()), dtype=torch.float64),
                              data.sum().cpu(), (data * data).sum().cpu()])
    return total


@HOOKS.register_module()
class SyncCheckHook(Hook):
    """Every ``interval`` steps, all-gather a fingerprint of the model (element count, sums)
    and fail loudly if ranks disagree, e.g. after a structure update that diverged."""

    priority = 'LOW'

    def __init__(self, interval: int = 100) -> None:
        self.interval = int(interval)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not is_distributed() or self.interval <= 0:
            return
        if runner.global_step % self.interval and runner.global_step != runner.max_iters:
            return
        self.check(runner)

    @staticmethod
    def check(runner) -> None:
        mine = model_fingerprint(runner.model)
        gathered = all_gather(mine.to(runner.device))  # on the backend's device inside
        ref = gathered[0].cpu()
        for rank, other in enumerate(gathered):
            other = other.cpu()
            if other[0] != ref[0] or not torch.allclose(other[1:], ref[1:], rtol=1e-9,
                                                        atol=0.0):
                raise RuntimeError(
                    f'Ranks disagree at step {runner.global_step}: rank 0 has '
                    f'{int(ref[0])} parameter elements (checksum {ref[1]:.10g}), rank {rank} '
                    f'has {int(other[0])} ({other[1]:.10g}). A structure update or gradient '
                    'all-reduce diverged; report this with the config.')
