"""A tiny third-party plugin used by the engine tests: it registers a data pipeline, a
renderer, a model, an optimizer and a hook, and is used by name from configs."""

from __future__ import annotations

import torch
from mmengine.hooks import Hook

from nerfreg.registry import DATASETS, HOOKS, MODELS, OPTIMIZERS, RENDERERS

CALLS: list[tuple[str, str]] = []  # (hook name, stage) in call order


@DATASETS.register_module()
class ToyRegressionData:
    """Noisy linear regression; a seeded view order that is part of the checkpoint."""

    def __init__(self, device='cpu', seed=0, rank=0, world_size=1, n=64, dim=8,
                 batch_size=8) -> None:
        g = torch.Generator().manual_seed(1234)
        self.w_true = torch.randn(dim, 1, generator=g)
        self.x = torch.randn(n, dim, generator=g)
        self.y = self.x @ self.w_true + 0.01 * torch.randn(n, 1, generator=g)
        self.device, self.seed, self.batch_size = torch.device(device), seed, batch_size
        self.epoch, self.position = 0, 0
        self.dataset = None
        self._order = self._permutation()

    def _permutation(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        return torch.randperm(self.x.shape[0], generator=g)

    def next_train_batch(self) -> dict:
        if self.position + self.batch_size > len(self._order):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._permutation()
        idx = self._order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return {'x': self.x[idx].to(self.device), 'y': self.y[idx].to(self.device)}

    def iter_split(self, split: str):
        for i in range(0, 16, 8):
            yield {'x': self.x[i:i + 8].to(self.device), 'y': self.y[i:i + 8].to(self.device)}

    def state_dict(self) -> dict:
        return {'epoch': self.epoch, 'position': self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state['epoch'], state['position']
        self._order = self._permutation()


@RENDERERS.register_module()
class ToyRenderer:
    """'Renders' by a matrix product, standing in for a rasterizer."""

    def __call__(self, render_inputs: dict, batch: dict) -> dict:
        return {'pred': batch['x'] @ render_inputs['w']}

    def state_dict(self) -> dict:
        return {'calls': 0}

    def load_state_dict(self, state: dict) -> None:
        pass


@MODELS.register_module()
class ToyModel(torch.nn.Module):
    def __init__(self, dim: int = 8, init_value: float = 0.0, ballast: int = 0) -> None:
        super().__init__()
        self.init_value = init_value
        self.w = torch.nn.Parameter(torch.full((dim, 1), float(init_value)))
        # checkpoint ballast: makes each save take measurable time in fault-injection tests
        self.register_buffer('ballast', torch.zeros(int(ballast)))

    def forward(self, batch: dict) -> dict:
        return {'w': self.w}

    def get_loss_dict(self, render_results: dict, batch: dict) -> dict:
        loss = torch.mean((render_results['pred'] - batch['y']) ** 2)
        return {'loss': loss, 'mse': loss.detach()}

    def get_optimizer_dict(self, loss_dict, render_results, batch, step) -> dict:
        return {'step': step}

    def get_metric_dict(self, render_results: dict, batch: dict) -> dict:
        return {'mse': ((render_results['pred'] - batch['y']) ** 2).mean(dim=1)}


@OPTIMIZERS.register_module()
class ToyOptimizer:
    """Adam with the ``update_model`` interface of nerfreg optimizers."""

    def __init__(self, model: torch.nn.Module, scene_extent: float = 1.0, lr: float = 0.05):
        self.model = model
        self.optim = torch.optim.Adam(model.parameters(), lr=lr)
        self.param_groups = self.optim.param_groups

    def update_model(self, step: int) -> None:
        self.optim.step()
        self.optim.zero_grad(set_to_none=True)

    def zero_grad(self) -> None:
        self.optim.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return self.optim.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optim.load_state_dict(state)


@HOOKS.register_module()
class RecordingHook(Hook):
    """Appends (name, stage) for every stage it sees, to check call order."""

    def __init__(self, name: str = 'rec') -> None:
        self.name = name

    def _record(self, stage: str) -> None:
        CALLS.append((self.name, stage))


def _make_stage(stage: str):
    def method(self, runner, *args, **kwargs):
        self._record(stage)
    method.__name__ = stage
    return method


for _stage in Hook.stages:
    setattr(RecordingHook, _stage, _make_stage(_stage))
