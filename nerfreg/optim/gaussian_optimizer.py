"""Adam over Gaussian attributes plus the structure-updating strategy."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nerfreg.registry import OPTIMIZERS, STRATEGIES

from ..utils.grad_check import non_finite_gradients
from .adam import build_adam, keep_adam_kernel

# 3DGS learning rates; ``means`` is multiplied by the scene extent.
DEFAULT_LRS: dict[str, float] = dict(means=1.6e-4, scales=5e-3, quats=1e-3, opacities=5e-2,
                                     sh0=2.5e-3, shN=2.5e-3 / 20)


@OPTIMIZERS.register_module()
class GaussianOptimizer:
    """One ``torch.optim.Adam`` with a param group per Gaussian attribute, plus a strategy.

    Args:
        model: a model with ``params`` (an ``nn.ParameterDict`` of ``[N, ...]`` tensors).
        scene_extent: scene scale; multiplies the ``means`` lr and is the strategy's
            ``scene_scale``.
        lr: per-attribute learning rates overriding :data:`DEFAULT_LRS`.
        scale_means_lr: multiply the ``means`` lr by ``scene_extent``.
        eps, betas: Adam hyper-parameters (3DGS uses ``eps=1e-15``).
        strategy: ``STRATEGIES`` config (or object); ``None`` for no structure updates.
        fused: torch's fused Adam kernel (one pass over all groups; several times faster on
            the CPU than the per-tensor loop). 'auto' = on when the parameters are on the
            CPU; False = torch's default implementation. Checkpoints have the same layout
            either way.

    ``update_model(**optimizer_dict)`` runs: Adam step, zero grad, then
    ``strategy.step_post_backward`` (statistics from ``means2d.grad`` of the rendered
    batch, then clone/split/prune), keeping Adam state rows aligned with Gaussians.
    """

    def __init__(self, model: nn.Module, scene_extent: float = 1.0,
                 lr: dict[str, float] | None = None, scale_means_lr: bool = True,
                 eps: float = 1e-15, betas: tuple[float, float] = (0.9, 0.999),
                 strategy: dict | Any | None = None, fused: bool | str = 'auto') -> None:
        self.model = model
        self.scene_extent = float(scene_extent)
        lrs = dict(DEFAULT_LRS)
        lrs.update(lr or {})
        unknown = sorted(set(lr or {}) - set(model.params.keys()))
        if unknown:
            raise ValueError(f'GaussianOptimizer: lr for unknown attributes {unknown}; '
                             f'known {list(model.params.keys())}')
        groups = []
        for name, param in model.params.items():
            value = lrs.get(name)
            if value is None:
                raise ValueError(f'GaussianOptimizer: no learning rate for {name!r}')
            if name == 'means' and scale_means_lr:
                value = value * self.scene_extent
            groups.append(dict(params=[param], lr=value, initial_lr=value, name=name))
        # groups of the model's other learnt parts (e.g. scene modules: pose corrections)
        groups += list(getattr(model, 'extra_param_groups', list)())
        self.optimizer, self.fused = build_adam(groups, fused, 'GaussianOptimizer', lr=0.0,
                                                eps=eps, betas=tuple(betas))
        if strategy is None:
            from nerfreg.strategies import Strategy
            self.strategy = Strategy()
        elif isinstance(strategy, dict):
            self.strategy = STRATEGIES.build(strategy)
        else:
            self.strategy = strategy
        self.strategy_state: dict[str, Any] = self.strategy.initialize_state(
            scene_scale=self.scene_extent)
        self.strategy.check_sanity(model.params, self.optimizer)
        self._connect_strategy(model)

    def _connect_strategy(self, model: nn.Module) -> None:
        """Let the strategy adapt the initial Gaussians and hand the model what the
        strategy needs from it: extra render inputs and loss terms."""
        self.strategy.initialize_params(model.params, self.optimizer, self.strategy_state)
        name = type(self.strategy).__name__
        for wants, hook, arg in ((self.strategy.render_requests(), 'request_render_inputs',
                                  'render inputs'),
                                 (self.strategy.loss_terms(), 'add_loss_terms', 'loss terms')):
            if not wants:
                continue
            fn = getattr(model, hook, None)
            if fn is None:
                raise ValueError(f'{name} needs the {arg} {sorted(wants)}, but '
                                 f'{type(model).__name__} has no {hook}() to take them')
            fn(**wants)

    # ------------------------------------------------------------------ torch-like API
    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def state(self) -> dict:
        return self.optimizer.state

    def get_lr(self) -> dict[str, float]:
        """Current learning rate per attribute."""
        return {g['name']: g['lr'] for g in self.param_groups}

    def non_finite_gradients(self) -> list[str]:
        """Attributes whose gradient holds a NaN/Inf (one reduction when all are finite)."""
        return non_finite_gradients(self.model.params.items())

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        """Adam step only (no structure update)."""
        self.sync_params()
        self.optimizer.step()

    @torch.no_grad()
    def sync_params(self) -> None:
        """Point the param groups at the model's current parameters.

        Needed when the model replaced parameters itself (e.g. ``load_state_dict`` with
        a different N). Adam state is carried over when the shape is unchanged.
        """
        for group in self.param_groups:
            if group['name'] not in self.model.params:  # an extra group: fixed size
                continue
            current = self.model.params[group['name']]
            old = group['params'][0]
            if old is current:
                continue
            state = self.optimizer.state.pop(old, None)
            group['params'][0] = current
            if state and all(not isinstance(v, Tensor) or v.dim() == 0 or v.shape == current.shape
                             for v in state.values()):
                self.optimizer.state[current] = state

    # ------------------------------------------------------------------ training step
    def update_model(self, step: int, **info: Any) -> dict[str, Any]:
        """Adam step, zero grad, then the strategy's structure update.

        ``info`` is the rest of the model's optimizer dict (``means2d`` with its grad,
        ``radii``, ``width``, ``height``, ``n_cameras``, ...). Returns logging scalars.
        """
        self.sync_params()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        info.setdefault('lr', self.get_lr())
        stats = self.strategy.step_post_backward(self.model.params, self.optimizer,
                                                 self.strategy_state, int(step), info)
        stats = dict(stats or {})
        stats['num_gaussians'] = int(self.model.params['means'].shape[0])
        return stats

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Adam and strategy state; distributed, a collective call that stores the strategy
        statistics summed over ranks (what one process with all the views would hold)."""
        self.sync_params()
        return dict(adam=self.optimizer.state_dict(),
                    strategy=self.strategy.global_state(self.strategy_state),  # a copy
                    strategy_type=type(self.strategy).__name__,
                    scene_extent=self.scene_extent)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore Adam and strategy state (call after the model's ``load_state_dict``)."""
        self.sync_params()
        self.optimizer.load_state_dict(state_dict['adam'])
        keep_adam_kernel(self.optimizer, self.fused)
        device = self.model.params['means'].device
        self.strategy_state = self.strategy.load_state_dict(state_dict.get('strategy', {}),
                                                            device=device)
        self.scene_extent = float(state_dict.get('scene_extent', self.scene_extent))
