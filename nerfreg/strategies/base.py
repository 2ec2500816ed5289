"""Strategy interface: structure updates (densify / prune / relocate) of Gaussians.

A strategy is a stateless, config-built object in the ``STRATEGIES`` registry. Its
mutable statistics live in a plain ``state`` dict created by ``initialize_state`` and
owned by the optimizer (saved in its ``state_dict``), so resume is exact and a strategy
can be swapped by name in the config.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

import torch
from mmengine.dist import all_reduce, get_rank, get_world_size
from torch import Tensor, nn

Params = MutableMapping[str, nn.Parameter]


def all_reduce_statistics(state: dict[str, Any], sum_keys: tuple[str, ...] = (),
                          max_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Sum / max the given per-Gaussian tensors of ``state`` over all ranks, in place.

    A no-op unless ``torch.distributed`` is initialised with more than one process.
    """
    if get_world_size() < 2:
        return state
    for key in sum_keys:
        if isinstance(state.get(key), Tensor):
            all_reduce(state[key], op='sum')
    for key in max_keys:
        if isinstance(state.get(key), Tensor):
            all_reduce(state[key], op='max')
    return state


class Strategy:
    """Base strategy: no structure updates."""

    #: per-Gaussian statistics that ranks sum / take the max of before structure decisions
    sum_statistics: tuple[str, ...] = ()
    max_statistics: tuple[str, ...] = ()
    sync_across_ranks: bool = True

    def initialize_state(self, scene_scale: float = 1.0) -> dict[str, Any]:
        """Fresh strategy state (statistics are created lazily at the first step)."""
        return {'scene_scale': float(scene_scale)}

    def initialize_params(self, params: Params, optimizer: torch.optim.Optimizer,
                          state: dict[str, Any]) -> None:
        """Adapt the initial Gaussians once, before training (e.g. to a budget)."""

    def loss_terms(self) -> dict[str, Callable[[Params], Tensor]]:
        """Regularisers ``name -> fn(params) -> scalar`` this strategy adds to the loss;
        the optimizer hands them to the model (``add_loss_terms``) at construction."""
        return {}

    def render_requests(self) -> dict[str, Any]:
        """Extra render inputs this strategy needs (e.g. ``{'absgrad': True}``); the
        optimizer hands them to the model (``request_render_inputs``) at construction."""
        return {}

    def check_sanity(self, params: Params, optimizer: torch.optim.Optimizer) -> None:
        """Check that every parameter has its own optimizer group named after it."""
        names = {g.get('name') for g in optimizer.param_groups}
        missing = [k for k in params.keys() if k not in names]
        if missing:
            raise ValueError(f'{type(self).__name__}: parameters {missing} have no optimizer '
                             'param group of the same name')
        n = {k: v.shape[0] for k, v in params.items()}
        if len(set(n.values())) > 1:
            raise ValueError(f'{type(self).__name__}: parameters disagree on N: {n}')

    def step_post_backward(self, params: Params, optimizer: torch.optim.Optimizer,
                           state: dict[str, Any], step: int, info: dict[str, Any],
                           **kwargs: Any) -> dict[str, Any]:
        """After the parameter update: gather statistics and edit the structure.

        Returns a dict of scalars for logging (e.g. numbers of grown / pruned Gaussians).
        """
        return {}

    def reduce_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """Combine statistics across processes before structure decisions.

        The single place where multi-process training all-reduces (sum of gradient
        accumulators and counts, max of radii). A no-op in one process.
        """
        if not self.sync_across_ranks:
            return state
        return all_reduce_statistics(state, self.sum_statistics, self.max_statistics)

    def global_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``state`` with the statistics combined over ranks (for checkpoints;
        collective when distributed). ``state`` itself keeps this rank's share."""
        return self.reduce_state(self.state_dict(state))

    def state_dict(self, state: dict[str, Any]) -> dict[str, Any]:
        """Serialisable copy of ``state``."""
        return {k: (v.detach().clone() if isinstance(v, Tensor) else v) for k, v in state.items()}

    def load_state_dict(self, state_dict: dict[str, Any],
                        device: torch.device | str | None = None) -> dict[str, Any]:
        """State rebuilt from ``state_dict`` (tensors moved to ``device``).

        Checkpoints hold statistics summed over ranks (``global_state``): rank 0 takes the
        sums and the other ranks start theirs at zero, so the next all-reduce is exact.
        """
        state = self.initialize_state(float(state_dict.get('scene_scale', 1.0)))
        for k, v in state_dict.items():
            state[k] = v.to(device) if isinstance(v, Tensor) and device is not None else v
        if self.sync_across_ranks and get_rank() > 0:
            for key in self.sum_statistics:
                if isinstance(state.get(key), Tensor):
                    state[key] = torch.zeros_like(state[key])
        return state
