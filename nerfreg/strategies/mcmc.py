"""3DGS as Markov Chain Monte Carlo (Kheradmand et al. 2024): relocation, growth to a
fixed budget, SGLD position noise and opacity / scale regularisers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from mmengine.logging import print_log
from torch import Tensor

from nerfreg.registry import STRATEGIES

from . import ops
from .base import Params, Strategy


@STRATEGIES.register_module()
@dataclass(eq=False)
class MCMCStrategy(Strategy):
    """Densification of "3D Gaussian Splatting as Markov Chain Monte Carlo".

    Gaussians are samples of a distribution, so no heuristics decide where to clone or
    split. Every ``refine_every`` steps in ``(refine_start, refine_stop)``:

    * **relocation**: Gaussians with opacity ``<= min_opacity`` ("dead") move onto live
      ones drawn with probability proportional to opacity; a Gaussian that ends up
      shared by N copies gives each of them the opacity ``1 - (1 - o)^(1/N)`` and a
      scale from the paper's binomial formula (``ops.relocation_correction``), so the
      image is unchanged to first order;
    * **growth**: ``growth_rate`` x N new Gaussians (at most up to ``cap_max``) are drawn
      the same way and added with the same correction.

    After every optimizer step (before ``noise_stop``, if set) positions get SGLD noise
    ``noise_lr * lr(means) * sigmoid(100 (1 - o - 0.995)) * Sigma @ eta`` (Sigma the
    covariance, eta standard normal): nearly transparent Gaussians explore, opaque ones
    stay. ``loss_terms`` contribute ``opacity_reg * mean(opacity)`` and
    ``scale_reg * mean(scale)`` to the model's loss (the paper's L1 regularisers, which
    make unused Gaussians fade and be relocated).

    ``noise_lr`` and ``scale_reg`` are in units of the scene extent (the optimizer's
    ``scene_scale``, e.g. 6.4 for cup's COLMAP model): the noise is divided by the extent
    squared (the means lr grows with the extent and the covariance with its square, while
    a displacement should grow with the extent) and the scale regulariser by the extent.
    So the paper's values act alike in any world units, as they do in gsplat's trainer,
    which normalises the world to an extent of about 1.

    With more initial points than ``cap_max`` a random subset of ``cap_max`` is kept (and
    logged). Random numbers come from generators seeded by ``(seed, step)``, so resumed
    and multi-process runs relocate and perturb identically.
    """

    cap_max: int = 1_000_000
    noise_lr: float = 5e5
    refine_start: int = 500
    refine_stop: int = 25_000
    refine_every: int = 100
    growth_rate: float = 0.05
    min_opacity: float = 0.005
    noise_stop: int | None = None
    opacity_reg: float = 0.01
    scale_reg: float = 0.01
    seed: int = 0
    verbose: bool = False
    #: the scene extent ``noise_lr`` and ``scale_reg`` are divided by (the state's
    #: ``scene_scale``, set by ``initialize_state``, which loading a state also calls)
    extent: float = field(default=1.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if int(self.cap_max) < 1:
            raise ValueError(f'MCMCStrategy: cap_max must be >= 1, got {self.cap_max}')
        self.cap_max = int(self.cap_max)
        self.seed = int(self.seed)

    def _generator(self, device: torch.device, step: int, stream: int) -> torch.Generator:
        generator = torch.Generator(device=device)
        generator.manual_seed((self.seed * 1_000_003 + int(step)) * 4 + stream)
        return generator

    # ------------------------------------------------------------------ setup
    def initialize_state(self, scene_scale: float = 1.0) -> dict[str, Any]:
        if not scene_scale > 0:
            raise ValueError(f'MCMCStrategy: scene_scale must be > 0, got {scene_scale}')
        self.extent = float(scene_scale)
        return super().initialize_state(scene_scale)

    def check_sanity(self, params: Params, optimizer: torch.optim.Optimizer) -> None:
        super().check_sanity(params, optimizer)
        missing = [k for k in ('means', 'scales', 'quats', 'opacities') if k not in params]
        if missing:
            raise ValueError(f'MCMCStrategy needs the parameters {missing}')

    @torch.no_grad()
    def initialize_params(self, params: Params, optimizer: torch.optim.Optimizer,
                          state: dict[str, Any]) -> None:
        """Keep a random subset of ``cap_max`` Gaussians when there are more."""
        n = params['means'].shape[0]
        if n <= self.cap_max:
            return
        device = params['means'].device
        keep = torch.randperm(n, generator=self._generator(device, -1, 0),
                              device=device)[:self.cap_max]
        drop = torch.ones(n, dtype=torch.bool, device=device)
        drop[keep] = False
        ops.remove(params, optimizer, state, drop)
        print_log(f'MCMCStrategy: {n} initial Gaussians exceed cap_max={self.cap_max}; '
                  f'kept a random subset of {self.cap_max}. Raise optimizer.strategy.cap_max '
                  'or set model.max_init_points to choose.', logger='current',
                  level=logging.WARNING)

    def loss_terms(self) -> dict[str, Callable[[Params], Tensor]]:
        terms: dict[str, Callable[[Params], Tensor]] = {}
        if self.opacity_reg > 0:
            terms['opacity_reg'] = self._opacity_reg
        if self.scale_reg > 0:
            terms['scale_reg'] = self._scale_reg
        return terms

    def _opacity_reg(self, params: Params) -> Tensor:
        return self.opacity_reg * torch.sigmoid(params['opacities']).mean()

    def _scale_reg(self, params: Params) -> Tensor:
        return self.scale_reg / self.extent * torch.exp(params['scales']).mean()

    # ------------------------------------------------------------------ main entry
    def step_post_backward(self, params: Params, optimizer: torch.optim.Optimizer,
                           state: dict[str, Any], step: int, info: dict[str, Any],
                           **kwargs: Any) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        if (self.refine_start < step < self.refine_stop and step % self.refine_every == 0):
            n_relocated = self.relocate(params, optimizer, state, step)
            n_added = self.add(params, optimizer, state, step)
            stats.update(n_relocated=n_relocated, n_added=n_added)
            if self.verbose:
                print_log(f'step {step}: {n_relocated} relocated, {n_added} added, now '
                          f"{params['means'].shape[0]} Gaussians", logger='current')
        if self.noise_lr > 0 and (self.noise_stop is None or step < self.noise_stop):
            lr = info.get('lr', {})
            lr = lr.get('means', 0.0) if isinstance(lr, dict) else float(lr)
            generator = self._generator(params['means'].device, step, 1)
            ops.inject_noise(params, float(lr) * self.noise_lr / self.extent**2,
                             generator=generator)
        return stats

    # ------------------------------------------------------------------ moves
    @torch.no_grad()
    def relocate(self, params: Params, optimizer: torch.optim.Optimizer,
                 state: dict[str, Any], step: int) -> int:
        """Move dead Gaussians onto live ones sampled by opacity; returns how many."""
        opacity = torch.sigmoid(params['opacities'].flatten())
        dead = opacity <= self.min_opacity
        alive = torch.where(~dead)[0]
        n_dead = int(dead.sum())
        if n_dead == 0 or len(alive) == 0:
            return 0
        generator = self._generator(opacity.device, step, 2)
        pick = torch.multinomial(opacity[alive], n_dead, replacement=True, generator=generator)
        ops.relocate(params, optimizer, state, dead, alive[pick], self.min_opacity)
        return n_dead

    @torch.no_grad()
    def add(self, params: Params, optimizer: torch.optim.Optimizer, state: dict[str, Any],
            step: int) -> int:
        """Add ``growth_rate`` x N Gaussians sampled by opacity, up to ``cap_max``."""
        n = params['means'].shape[0]
        n_new = max(0, min(self.cap_max, int((1.0 + self.growth_rate) * n)) - n)
        if n_new == 0:
            return 0
        opacity = torch.sigmoid(params['opacities'].flatten())
        generator = self._generator(opacity.device, step, 3)
        sampled = torch.multinomial(opacity, n_new, replacement=True, generator=generator)
        ops.sample_add(params, optimizer, state, sampled, self.min_opacity)
        return n_new
