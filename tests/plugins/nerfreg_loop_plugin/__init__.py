"""A third-party plugin for the tests: its own train loop and its own export format, used
by name from a config (``tests/configs/loop_plugin.py``) with no change to nerfreg."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nerfreg.engine.loops import BaseLoop
from nerfreg.registry import EXPORTERS, LOOPS

RUNS: list[dict] = []  # what each EarlyStopTrainLoop run did


@LOOPS.register_module()
class EarlyStopTrainLoop(BaseLoop):
    """Train until the loss has stayed below ``loss_below`` for ``patience`` steps, or for
    ``max_steps`` steps; validate once at the end."""

    def __init__(self, runner, max_steps: int = 100, loss_below: float = 1e-2,
                 patience: int = 3) -> None:
        super().__init__(runner)
        self.max_iters, self.loss_below, self.patience = int(max_steps), loss_below, patience

    def run(self) -> torch.nn.Module:
        runner, calm, losses = self.runner, 0, []
        runner.call_hook('before_train')
        while runner.global_step < self.max_iters and calm < self.patience:
            runner.iter = runner.global_step
            batch = runner.data.next_train_batch()
            runner.call_hook('before_train_iter', batch_idx=runner.iter, data_batch=batch)
            outputs = runner.train_step(batch)
            runner.global_step += 1
            runner.call_hook('after_train_iter', batch_idx=runner.iter, data_batch=batch,
                             outputs=outputs)
            losses.append(float(outputs['loss']))
            calm = calm + 1 if losses[-1] < self.loss_below else 0
        metrics = runner.validation()
        runner.call_hook('after_train')
        RUNS.append(dict(steps=runner.global_step, losses=losses, val=metrics))
        return runner.model


@EXPORTERS.register_module()
class NpzExporter:
    """Every tensor of a model's state dict in one ``.npz`` (any ``nn.Module``)."""

    suffix = '.npz'

    def __init__(self, compressed: bool = False) -> None:
        self.compressed = compressed

    def accepts(self, model) -> bool:
        return isinstance(model, torch.nn.Module)

    def __call__(self, model: torch.nn.Module, path: str | Path) -> Path:
        arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        (np.savez_compressed if self.compressed else np.savez)(path, **arrays)
        return Path(path)
