"""3DGS adaptive density control: clone / split / prune and periodic opacity reset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from mmengine.logging import print_log
from torch import Tensor

from nerfreg.registry import STRATEGIES

from . import ops
from .base import Params, Strategy


@STRATEGIES.register_module()
@dataclass(eq=False)
class DefaultStrategy(Strategy):
    """Densification of Kerbl et al. 2023 ("3D Gaussian Splatting"), gsplat-style.

    Every step before ``refine_stop`` the norm of each visible Gaussian's screen-space
    mean gradient (scaled to NDC units: x by ``width/2``, y by ``height/2``, times the
    number of cameras of the batch) is accumulated with a visibility count, and the
    largest screen radius (as a fraction of ``max(width, height)``) is tracked. With
    ``absgrad`` the gradient is the per-pixel sum of absolute gradients (gsplat's
    ``absgrad``, "AbsGS", Ye et al. 2024): pixels pulling a large Gaussian in opposite
    directions no longer cancel, so blurry large Gaussians grow too; its threshold is
    larger (``grow_grad2d=None`` picks 0.0002, or 0.0008 with ``absgrad``). Every
    ``refine_every`` steps after ``refine_start``:

    * Gaussians whose averaged gradient exceeds ``grow_grad2d`` grow: cloned when their
      largest scale is at most ``grow_scale3d * scene_scale`` (3DGS ``percent_dense``),
      else split into ``n_split`` children sampled from them with scales / 1.6;
      growth is limited to ``cap_max`` Gaussians (highest gradients first);
    * Gaussians with opacity below ``prune_opa`` are pruned and, after the first
      opacity reset (or after step ``prune_big_after`` when that is set, with or
      without resets), also those larger than ``prune_scale3d * scene_scale`` in world
      space or ``prune_scale2d`` of the image in screen space (``None`` disables);
    * statistics restart from zero.

    Every ``reset_every`` steps opacities are clamped to ``reset_opacity``.
    Steps are the trainer's 0-based step indices. Split samples come from a generator
    seeded by ``(seed, step)``: identical on every rank and independent of the global RNG,
    so resumed and multi-process runs split exactly alike. With ``sync_across_ranks``
    ``reduce_state`` all-reduces the statistics (sum of gradients and counts, max of
    radii) before every refinement (on by default; a no-op in one process), so every rank
    clones, splits and prunes the same Gaussians.
    """

    sum_statistics = ('grad2d', 'count')
    max_statistics = ('radii',)

    refine_start: int = 500
    refine_stop: int = 15_000
    refine_every: int = 100
    reset_every: int = 3000
    pause_refine_after_reset: int = 0
    grow_grad2d: float | None = None
    grow_scale3d: float = 0.01
    grow_scale2d: float = 0.05
    refine_scale2d_stop: int = 0
    prune_opa: float = 0.005
    prune_scale3d: float = 0.1
    prune_scale2d: float | None = 0.15
    prune_big_after: int | None = None
    reset_opacity: float = 0.01
    n_split: int = 2
    split_scale_factor: float = 1.6
    revised_opacity: bool = False
    absgrad: bool = False
    cap_max: int | None = None
    seed: int = 0
    sync_across_ranks: bool = True
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.grow_grad2d is None:
            self.grow_grad2d = 0.0008 if self.absgrad else 0.0002
        self.seed = int(self.seed)

    def render_requests(self) -> dict[str, Any]:
        return {'absgrad': True} if self.absgrad else {}

    def initialize_state(self, scene_scale: float = 1.0) -> dict[str, Any]:
        return {'grad2d': None, 'count': None, 'radii': None, 'scene_scale': float(scene_scale)}

    # ------------------------------------------------------------------ statistics
    @staticmethod
    def _reset_statistics(state: dict[str, Any], n: int, device: torch.device) -> None:
        """Zero statistics for ``n`` Gaussians. The gradient sum is float64, so that the
        order in which views and ranks add their float32 norms cannot move a Gaussian
        across ``grow_grad2d`` (one process with B views == B ranks, in practice exactly)."""
        state['grad2d'] = torch.zeros(n, device=device, dtype=torch.float64)
        state['count'] = torch.zeros(n, device=device)
        state['radii'] = torch.zeros(n, device=device)

    @torch.no_grad()
    def update_state(self, params: Params, state: dict[str, Any], info: dict[str, Any]) -> None:
        """Accumulate screen-space gradient norms, visibility counts and max radii."""
        means2d = info['means2d']
        attr = 'absgrad' if self.absgrad else 'grad'
        grad = getattr(means2d, attr, None) if isinstance(means2d, Tensor) else None
        if grad is None and self.absgrad:
            raise RuntimeError(
                'DefaultStrategy(absgrad=True): info["means2d"] has no .absgrad; the renderer '
                'must be called with render_inputs["absgrad"]=True (GaussianOptimizer asks '
                'the model for it via request_render_inputs) and a backend that computes it '
                "('cpu', 'torch' or 'gsplat'), and update_model must run after backward()")
        if grad is None:
            raise RuntimeError(
                'DefaultStrategy: info["means2d"] has no gradient; the renderer must return '
                'meta["means2d"] with retain_grad() and update_model must run after '
                'loss.backward()')
        n = params['means'].shape[0]
        if n == 0:
            return
        width, height = int(info['width']), int(info['height'])
        n_cameras = int(info.get('n_cameras', grad.shape[0] if grad.dim() == 3 else 1))
        grad = grad.reshape(-1, grad.shape[-2], 2).clone()
        grad[..., 0] *= width / 2.0 * n_cameras
        grad[..., 1] *= height / 2.0 * n_cameras
        radii = info['radii'].reshape(grad.shape[0], grad.shape[1], *info['radii'].shape[2:])
        if radii.dim() == 3:  # per-axis radii
            radii = radii.max(dim=-1).values
        if state.get('grad2d') is None or state['grad2d'].shape[0] != n:
            self._reset_statistics(state, n, grad.device)
        # dense per camera (no index lists): the same sums in the same order as a scatter
        # over the visible (camera, Gaussian) pairs
        visible = radii > 0
        norms = grad.norm(dim=-1)
        scaled = radii.float() / max(width, height)
        for c in range(visible.shape[0]):
            vis = visible[c]
            state['grad2d'] += torch.where(vis, norms[c], 0.0).double()
            state['count'] += vis
            torch.maximum(state['radii'], torch.where(vis, scaled[c], 0.0), out=state['radii'])

    def load_state_dict(self, state_dict: dict[str, Any],
                        device: torch.device | str | None = None) -> dict[str, Any]:
        state = super().load_state_dict(state_dict, device)
        if isinstance(state.get('grad2d'), Tensor):  # older checkpoints stored float32
            state['grad2d'] = state['grad2d'].double()
        return state

    # ------------------------------------------------------------------ main entry
    def step_post_backward(self, params: Params, optimizer: torch.optim.Optimizer,
                           state: dict[str, Any], step: int, info: dict[str, Any],
                           **kwargs: Any) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        if step >= self.refine_stop:
            return stats
        self.update_state(params, state, info)
        if (step > self.refine_start and step % self.refine_every == 0
                and step % self.reset_every >= self.pause_refine_after_reset):
            reduced = self.reduce_state(state)
            if reduced is not state:
                state.update(reduced)
            n_dupli, n_split = self.grow(params, optimizer, state, step)
            n_prune = self.prune(params, optimizer, state, step)
            n = params['means'].shape[0]
            self._reset_statistics(state, n, params['means'].device)
            stats.update(n_dupli=n_dupli, n_split=n_split, n_prune=n_prune)
            if self.verbose:
                print_log(f'step {step}: {n_dupli} cloned, {n_split} split, {n_prune} pruned, '
                          f'now {n} Gaussians', logger='current')
        if step % self.reset_every == 0 and step > 0:
            ops.reset_opacity(params, optimizer, self.reset_opacity)
            stats['opacity_reset'] = True
        return stats

    # ------------------------------------------------------------------ decisions
    @torch.no_grad()
    def grow_masks(self, params: Params, state: dict[str, Any],
                   step: int) -> tuple[Tensor, Tensor]:
        """Boolean masks ``(clone, split)`` of the Gaussians to grow, within ``cap_max``."""
        n = params['means'].shape[0]
        device = params['means'].device
        if state.get('count') is None or state['count'].shape[0] != n:
            empty = torch.zeros(n, dtype=torch.bool, device=device)
            return empty, empty.clone()
        avg_grad = state['grad2d'] / state['count'].clamp_min(1)
        high = avg_grad > self.grow_grad2d
        small = torch.exp(params['scales']).max(dim=-1).values <= (
            self.grow_scale3d * state['scene_scale'])
        is_dupli = high & small
        is_split = high & ~small
        if step < self.refine_scale2d_stop:
            is_split |= state['radii'] > self.grow_scale2d
        if self.cap_max is not None:
            budget = max(int(self.cap_max) - n, 0)
            # A clone and a split (n_split children replace the parent) each add rows.
            cand = torch.where(is_dupli | is_split)[0]
            cost = torch.where(is_dupli[cand], 1, self.n_split - 1)
            if int(cost.sum()) > budget:
                order = torch.argsort(avg_grad[cand], descending=True)
                fits = torch.cumsum(cost[order], 0) <= budget
                keep = torch.zeros(n, dtype=torch.bool, device=device)
                keep[cand[order[fits]]] = True
                is_dupli &= keep
                is_split &= keep
        return is_dupli, is_split

    @torch.no_grad()
    def grow(self, params: Params, optimizer: torch.optim.Optimizer, state: dict[str, Any],
             step: int) -> tuple[int, int]:
        """Clone small and split large high-gradient Gaussians; returns the counts."""
        is_dupli, is_split = self.grow_masks(params, state, step)
        n_dupli, n_split = int(is_dupli.sum()), int(is_split.sum())
        if n_dupli:
            ops.duplicate(params, optimizer, state, is_dupli)
            # Clones are never split in the same step (they are small).
            is_split = torch.cat([is_split, is_split.new_zeros(n_dupli)])
        if n_split:
            device = params['means'].device
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed * 1_000_003 + int(step))
            ops.split(params, optimizer, state, is_split, n_split=self.n_split,
                      scale_factor=self.split_scale_factor,
                      revised_opacity=self.revised_opacity, generator=generator)
        return n_dupli, n_split

    @torch.no_grad()
    def prune_mask(self, params: Params, state: dict[str, Any], step: int) -> Tensor:
        """Boolean mask of the Gaussians to prune."""
        is_prune = torch.sigmoid(params['opacities'].flatten()) < self.prune_opa
        big_from = self.reset_every
        if self.prune_big_after is not None:
            big_from = min(big_from, int(self.prune_big_after))
        if step > big_from:
            too_big = torch.exp(params['scales']).max(dim=-1).values > (
                self.prune_scale3d * state['scene_scale'])
            radii = state.get('radii')
            if (self.prune_scale2d is not None and radii is not None
                    and radii.shape[0] == too_big.shape[0]):
                too_big |= radii > self.prune_scale2d
            is_prune |= too_big
        return is_prune

    @torch.no_grad()
    def prune(self, params: Params, optimizer: torch.optim.Optimizer, state: dict[str, Any],
              step: int) -> int:
        """Remove transparent (and, after the first reset or ``prune_big_after``,
        oversized) Gaussians."""
        is_prune = self.prune_mask(params, state, step)
        n_prune = int(is_prune.sum())
        if n_prune:
            ops.remove(params, optimizer, state, is_prune)
        return n_prune
