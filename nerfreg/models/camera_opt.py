"""``CameraOptimizer`` (``MODELS``, config section ``camera_opt``): learnable pose corrections
of the training cameras.

Each training camera ``i`` gets a 6-vector ``delta[i] = (omega, v)`` (zero at the start)
that defines a rigid correction ``D_i`` applied in the camera's own frame:
``c2w' = c2w @ D_i``, i.e. ``w2c' = D_i^-1 @ w2c``. ``omega`` is an axis-angle rotation
(radians); ``v`` a translation in units of the scene extent. Two parameterisations:

- ``'SO3xR3'``: ``R = exp([omega]_x)``, ``t = v * extent`` (rotation and translation
  decoupled, as nerfstudio's default);
- ``'SE3'``: ``D = exp([[omega]_x, v * extent; 0, 0])`` (the screw motion).

Both use ``torch.linalg.matrix_exp`` (exact, differentiable).

**Gauge.** Moving every training camera by one small similarity (and the scene with it)
leaves the training images unchanged, so nothing in the loss stops the corrections from
drifting along those 7 directions, and a drift there misaligns the held-out views, which keep
their recorded poses. With ``gauge='similarity'`` (default) the corrections are projected,
to first order, onto the complement of the corrections that one common similarity of all
training cameras would make (rotation, translation and scale about their centroid), so the
refined cameras stay in the frame of the recorded ones; ``'rigid'`` removes 6 directions,
``'none'`` nothing. Corrections reach the renderers
as corrected ``viewmats`` (splats), ``camera`` (whole views of fields) or ray origins and
directions (ray batches), so no renderer knows about them. Held-out views keep their
recorded poses (see docs/real_captures.md for the gauge).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from nerfreg.cameras.rigid import MODES, correction_matrices, invert_rigid, skew
from nerfreg.metrics.functional import view_metrics
from nerfreg.registry import MODELS

from .pose_alignment import ViewRenderer, align_views, correction_size, view_overrides
from .scene_modules import SceneModule, is_training_view, training_indices

GAUGES = {'none': 0, 'rigid': 6, 'similarity': 7}


def gauge_basis(w2c_rot: Tensor, centres: Tensor, dof: int) -> Tensor:
    """``[N*6, dof]``: the camera-frame corrections (``omega``, ``v``) of ``N`` cameras that
    one small common motion of all of them makes, per unit of each of its ``dof`` parameters
    (world rotation ``W``, translation ``u``, then scale ``s``, about the centroid).

    A world motion moves camera ``i`` (centre ``c_i``, in extent units) by rotation ``W``
    and translation ``W x c_i + u + s c_i``; in the camera's frame both are rotated by
    ``R_w2c``.
    """
    n = centres.shape[0]
    c = centres - centres.mean(0)
    eye = torch.eye(3, dtype=c.dtype).expand(n, 3, 3)
    world = torch.zeros(n, 6, 7, dtype=c.dtype)
    world[:, :3, :3] = eye
    world[:, 3:, :3] = -skew(c)
    world[:, 3:, 3:6] = eye
    world[:, 3:, 6] = c
    rot = torch.zeros(n, 6, 6, dtype=c.dtype)
    rot[:, :3, :3] = w2c_rot
    rot[:, 3:, 3:] = w2c_rot
    return (rot @ world[:, :, :dof]).reshape(n * 6, dof)


@MODELS.register_module()
class CameraOptimizer(SceneModule):
    """Per-training-camera SE(3) corrections (see the module docstring).

    Args:
        mode: 'SO3xR3' | 'SE3'.
        lr: Adam learning rate of the corrections (group ``camera_opt``).
        final_ratio, decay_steps: the lr decays log-linearly to ``lr * final_ratio`` over
            ``decay_steps`` steps (set it to the run's length).
        warmup_steps: the lr rises linearly from 0 over these first steps (lets the scene
            settle before the poses move).
        weight_decay: Adam weight decay pulling every correction toward zero.
        gauge: 'similarity' | 'rigid' | 'none': which common motion of all training
            cameras is projected out of the corrections (see the module docstring).
        eps: Adam epsilon of the group.
        eval_align: also score every held-out view after fitting its camera to its own photo
            (``psnr_aligned``/``ssim_aligned``, and the fitted correction's size as
            ``aligned_rot_deg``/``aligned_trans_pct``; see ``pose_alignment``). The plain
            metrics are unchanged.
        align_steps, align_lr: Adam steps and initial lr of that fit.
    """

    def __init__(self, mode: str = 'SO3xR3', lr: float = 1e-4, final_ratio: float = 0.01,
                 decay_steps: int = 10_000, warmup_steps: int = 0, weight_decay: float = 1e-4,
                 gauge: str = 'similarity', eps: float = 1e-8, eval_align: bool = False,
                 align_steps: int = 100, align_lr: float = 5e-3) -> None:
        super().__init__()
        self.eval_align, self.align_steps = bool(eval_align), int(align_steps)
        self.align_lr = float(align_lr)
        if gauge not in GAUGES:
            raise ValueError(f'camera_opt.gauge must be one of {tuple(GAUGES)}, got {gauge!r}')
        self.gauge = gauge
        self.decay_steps = max(1, int(decay_steps))
        if mode not in MODES:
            raise ValueError(f'camera_opt.mode must be one of {MODES}, got {mode!r}')
        self.mode = mode
        self.lr, self.final_ratio = float(lr), float(final_ratio)
        self.warmup_steps = int(warmup_steps)
        self.weight_decay, self.eps = float(weight_decay), float(eps)
        self.delta = nn.Parameter(torch.zeros(0, 6))
        # camera-to-world rotations of the training cameras (to turn corrections of ray
        # batches into world space) and the translation unit
        self.register_buffer('c2w_rot', torch.zeros(0, 3, 3))
        self.register_buffer('extent', torch.ones(()))
        # gauge projection: corrections <- corrections - basis @ (solve @ corrections)
        self.register_buffer('gauge_span', torch.zeros(0, 0), persistent=False)
        self.register_buffer('gauge_solve', torch.zeros(0, 0), persistent=False)

    @classmethod
    def check_disabled(cls, section: str, cfg: dict[str, Any]) -> None:
        if cfg.get('eval_align'):
            raise ValueError(f'{section}.eval_align=True needs the section on: add '
                             f'{section}.enabled=True (with {section}.lr=0 to align held-out '
                             'views of a model trained without pose refinement)')

    @torch.no_grad()
    def setup(self, scene: Any) -> None:
        cams = scene.train.cameras
        self.delta = nn.Parameter(torch.zeros(len(cams), 6))
        self.c2w_rot = cams.R.float().transpose(1, 2).cpu().clone()
        self.extent = torch.tensor(float(getattr(scene, 'scene_extent', 1.0) or 1.0))
        dof = GAUGES[self.gauge] if len(cams) > 2 else 0
        if dof:
            basis = gauge_basis(cams.R.double().cpu(), cams.centers().double().cpu()
                                / float(self.extent), dof)
            self.gauge_span = basis.float()
            self.gauge_solve = torch.linalg.pinv(basis).float()

    def effective_delta(self) -> Tensor:
        """The corrections ``[N,6]`` in use: the parameters with the gauge projected out."""
        if self.gauge_span.numel() == 0:
            return self.delta
        flat = self.delta.reshape(-1)
        span = self.gauge_span.to(flat)
        return (flat - span @ (self.gauge_solve.to(flat) @ flat)).view_as(self.delta)

    def param_groups(self) -> list[dict[str, Any]]:
        return [dict(name='camera_opt', params=[self.delta], lr=self.lr, initial_lr=self.lr,
                     weight_decay=self.weight_decay, eps=self.eps)]

    def scheduler_cfgs(self) -> list[dict[str, Any]]:
        return [dict(type='ExponentialDecayLR', groups=['camera_opt'],
                     max_steps=self.decay_steps, final_ratio=self.final_ratio,
                     delay_steps=self.warmup_steps, delay_mult=0.0)]

    def matrices(self, index: Tensor | None = None) -> Tensor:
        """Corrections ``D [N,4,4]`` of the training cameras ``index`` (all: None)."""
        delta = self.effective_delta()
        delta = delta if index is None else delta[index]
        return correction_matrices(delta, self.mode, self.extent.to(delta.dtype))

    @torch.no_grad()
    def corrected_cameras(self, cameras: Any) -> Any:
        """The training ``Cameras`` with the learnt corrections applied (all of them)."""
        inv = invert_rigid(self.matrices().to(cameras.R.device, cameras.R.dtype))
        rot = inv[:, :3, :3] @ cameras.R
        t = (inv[:, :3, :3] @ cameras.t[..., None])[..., 0] + inv[:, :3, 3]
        return replace(cameras, R=rot, t=t)

    def camera_overrides(self, batch: dict[str, Any]) -> dict[str, Any]:
        if not is_training_view(batch) or self.delta.shape[0] == 0:
            return {}
        index = training_indices(batch)
        d = self.matrices(index)
        if 'rays_o' in batch:  # o' = o + R_c t_D ; d' = R_c R_D R_c^T d
            rc = self.c2w_rot[index].to(d.dtype)
            dirs = (rc @ (d[:, :3, :3] @ (rc.transpose(1, 2) @ batch['rays_d'][..., None])))
            origins = batch['rays_o'] + (rc @ d[:, :3, 3:])[..., 0]
            return dict(rays_o=origins, rays_d=dirs[..., 0])
        return view_overrides(batch, invert_rigid(d) @ batch['viewmats'])

    def eval_metrics(self, pred: Tensor, target: Tensor, batch: dict[str, Any],
                     render: ViewRenderer | None = None) -> dict[str, Tensor]:
        """With ``eval_align``: the metrics of each held-out view rendered from its camera
        fitted to its own photo (``pose_alignment``)."""
        if not self.eval_align or is_training_view(batch):
            return {}
        if render is None:
            raise ValueError('camera_opt.eval_align needs the evaluation loop to pass a '
                             '`render` function to get_metric_dict (the default loops do)')
        delta, rgb = align_views(render, target, batch, steps=self.align_steps,
                                 lr=self.align_lr, mode=self.mode,
                                 extent=float(self.extent), mask=batch.get('mask'))
        scores = view_metrics(rgb, target)
        rot, trans = correction_size(delta)
        return {**{k + '_aligned': v for k, v in scores.items()},
                'aligned_rot_deg': rot, 'aligned_trans_pct': trans}

    def extra_repr(self) -> str:
        return f'mode={self.mode}, gauge={self.gauge}, cameras={self.delta.shape[0]}'
