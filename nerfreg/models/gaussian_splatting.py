"""3D Gaussian Splatting model (Kerbl et al. 2023): parameters, losses, metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from nerfreg.registry import MODELS

from .base import BackgroundSpec, BaseModel
from .init import footprint_max_scale, knn_mean_sq_dist, rgb_to_sh0, sample_seen_points
from .losses import l1_ssim_loss, masked_l1_ssim_loss

logger = logging.getLogger(__name__)

@MODELS.register_module()
class GaussianSplatting(BaseModel):
    """A set of anisotropic 3D Gaussians with SH colours.

    Parameters (``self.params``): ``means [N,3]``, ``scales [N,3]`` (log), ``quats [N,4]``
    (wxyz, unnormalised), ``opacities [N]`` (logit), ``sh0 [N,1,3]``, ``shN [N,K-1,3]``
    with ``K = (sh_degree+1)^2``. The active SH degree grows by one every
    ``sh_degree_interval`` steps; it is derived from the step, kept in the ``step``
    buffer (saved in checkpoints) or given as ``batch['step']``.

    Args:
        sh_degree: maximum SH degree (0..3).
        sh_degree_interval: steps between SH degree increases.
        init_opacity: initial opacity of every Gaussian.
        init_scale: multiplier of the k-NN initial scale.
        init_scale_jitter: standard deviation of independent noise added to each axis of
            the initial log-scales. The k-NN start is exactly isotropic, where the
            rotation's gradient is exactly zero; Adam (eps 1e-15) then moves the rotation
            only by whatever round-off the projection backward leaves, so training would
            depend on it. A 1% jitter makes the gradient real from the first step (0:
            exactly isotropic, the 3DGS start).
        knn: neighbours for the initial scale (3 as in 3DGS).
        num_random: Gaussians placed uniformly when the scene has no points.
        random_extent: half size of the random cube, in units of ``scene_extent``.
        max_init_points: random subset of the point cloud at most this large (None: all).
        random_init: ignore the scene's point cloud and start from ``num_random`` random
            points (e.g. to show that MCMC needs no SfM points).
        random_min_views: draw random points only where at least this fraction of the
            training cameras see them (in front, inside the image); 0 (default): anywhere
            in the cube. Points outside every view only cost time, and those next to a
            camera cover its whole image.
        init_max_radius: cap every initial Gaussian's scale so that its screen radius
            (3 sigma, as the rasterizer computes it) is at most this many pixels in every
            training camera it is in front of (None: the k-NN scale as is). Large initial
            Gaussians overlap many tiles and make the first steps several times slower.
        background: 'white' | 'black' | 'random' | [r, g, b]. With 'random' each training
            view gets a random colour and images with alpha are re-composited on it.
        eval_background: background at evaluation (default: ``background``, black when
            that is 'random').
        ssim_lambda: weight of ``1 - SSIM`` in the loss.
        opacity_reg, scale_reg: optional L1 regularisers on activated opacities / scales.
        fused_loss: L1 + D-SSIM from the fused CPU kernel ('auto': on CPU; False: always
            the torch reference, see ``losses.l1_ssim_loss``).
        train_render_mode: render mode of training renders. 'auto' (default): 'RGB' (no
            depth channel to composite) unless a config section's loss reads the depth
            (``SceneModule.needs_training_depth``, e.g. ``depth_loss``), then the
            renderer's own mode; or a mode name, or None for the renderer's mode.
            Evaluation renders always use the renderer's mode.
    """

    def __init__(self, sh_degree: int = 3, sh_degree_interval: int = 1000,
                 init_opacity: float = 0.1, init_scale: float = 1.0, knn: int = 3,
                 num_random: int = 100_000, random_extent: float = 1.0,
                 max_init_points: int | None = None, background: BackgroundSpec = 'black',
                 eval_background: BackgroundSpec | None = None, ssim_lambda: float = 0.2,
                 opacity_reg: float = 0.0, scale_reg: float = 0.0,
                 random_init: bool = False, fused_loss: bool | str = 'auto',
                 random_min_views: float = 0.0, init_max_radius: float | None = None,
                 train_render_mode: str | None = 'auto',
                 init_scale_jitter: float = 0.01) -> None:
        super().__init__()
        self.train_render_mode = train_render_mode
        if not 0 <= sh_degree <= 3:
            raise ValueError(f'sh_degree must be in 0..3, got {sh_degree}')
        self.sh_degree = int(sh_degree)
        self.sh_degree_interval = int(sh_degree_interval)
        self.init_opacity = float(init_opacity)
        self.init_scale = float(init_scale)
        if float(init_scale_jitter) < 0:
            raise ValueError(f'init_scale_jitter must be >= 0, got {init_scale_jitter}')
        self.init_scale_jitter = float(init_scale_jitter)
        self.knn = int(knn)
        self.num_random = int(num_random)
        self.random_extent = float(random_extent)
        self.max_init_points = max_init_points
        self.random_init = bool(random_init)
        if not 0.0 <= float(random_min_views) <= 1.0:
            raise ValueError(f'random_min_views must be a fraction in [0, 1], got '
                             f'{random_min_views}')
        self.random_min_views = float(random_min_views)
        self.init_max_radius = None if init_max_radius is None else float(init_max_radius)
        self.set_backgrounds(background, eval_background)
        self.ssim_lambda = float(ssim_lambda)
        self.opacity_reg = float(opacity_reg)
        self.scale_reg = float(scale_reg)
        self.fused_loss = fused_loss
        k = (self.sh_degree + 1) ** 2
        self.params = nn.ParameterDict({
            'means': nn.Parameter(torch.zeros(0, 3)),
            'scales': nn.Parameter(torch.zeros(0, 3)),
            'quats': nn.Parameter(torch.zeros(0, 4)),
            'opacities': nn.Parameter(torch.zeros(0)),
            'sh0': nn.Parameter(torch.zeros(0, 1, 3)),
            'shN': nn.Parameter(torch.zeros(0, k - 1, 3)),
        })
        self.register_buffer('step', torch.zeros((), dtype=torch.long))
        # Extra renderer inputs asked for by the optimizer's strategy (e.g. absgrad=True).
        self.render_requests: dict[str, Any] = {}
        # Extra loss terms ``name -> fn(params)`` added by the strategy (e.g. MCMC's).
        self.loss_terms: dict[str, Callable[[nn.ParameterDict], Tensor]] = {}
        # Background the dataset composited its images on (to re-composite with alpha).
        self.register_buffer('data_background', torch.zeros(3))

    # ------------------------------------------------------------------ properties
    @property
    def num_gaussians(self) -> int:
        return int(self.params['means'].shape[0])

    @property
    def device(self) -> torch.device:
        return self.step.device

    def active_sh_degree(self, step: int | None = None) -> int:
        """SH degree in use at ``step`` (default: the model's current step)."""
        step = int(self.step) if step is None else int(step)
        if self.sh_degree_interval <= 0:
            return self.sh_degree
        return min(self.sh_degree, step // self.sh_degree_interval)

    def request_render_inputs(self, **inputs: Any) -> None:
        """Add ``inputs`` (e.g. ``absgrad=True``) to every ``forward`` output."""
        self.render_requests.update(inputs)

    def add_loss_terms(self, **terms: Callable[[nn.ParameterDict], Tensor]) -> None:
        """Add ``name=fn`` terms: ``get_loss_dict`` adds ``fn(self.params)`` to the loss."""
        self.loss_terms.update(terms)

    def set_step(self, step: int) -> None:
        """Tell the model which training step comes next."""
        self.step.fill_(int(step))

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def setup(self, scene: Any) -> None:
        """Initialise from ``scene.points`` / ``points_rgb`` or random points in the bounds."""
        device = self.device
        points = getattr(scene, 'points', None)
        colors = getattr(scene, 'points_rgb', None)
        extent = float(getattr(scene, 'scene_extent', 1.0) or 1.0)
        bg = getattr(scene, 'background', None)
        if bg is not None:
            self.data_background.copy_(torch.as_tensor(bg, dtype=torch.float32).reshape(3))
        use_random = points is None or len(points) == 0 or self.random_init
        # the training cameras, looked up once, when a camera-aware option needs them
        wants_cams = (use_random and self.random_min_views > 0) or self.init_max_radius is not None
        cams = self._train_cameras(scene) if wants_cams else None
        if use_random:
            center = getattr(scene, 'scene_center', None)
            center = (torch.zeros(3) if center is None
                      else torch.as_tensor(center, dtype=torch.float32).reshape(3))
            half = self.random_extent * extent
            if cams is not None and self.random_min_views > 0:
                points = sample_seen_points(self.num_random, center, half, cams,
                                            self.random_min_views)
            else:
                points = center + (torch.rand(self.num_random, 3) * 2 - 1) * half
            colors = torch.rand(self.num_random, 3)
            logger.info('GaussianSplatting: %d random points (no point cloud)', self.num_random)
        else:
            points = torch.as_tensor(points, dtype=torch.float32)
            if colors is None:
                colors = torch.full_like(points, 0.5)
            else:
                colors = torch.as_tensor(colors)
                colors = colors.float() / 255.0 if colors.dtype == torch.uint8 else colors.float()
            if self.max_init_points is not None and len(points) > self.max_init_points:
                keep = torch.randperm(len(points))[:self.max_init_points]
                points, colors = points[keep], colors[keep]
        self.init_from_points(points.to(device), colors.to(device))
        if cams is not None and self.init_max_radius is not None:
            self.cap_scales_to_footprint(cams, self.init_max_radius)

    @staticmethod
    def _train_cameras(scene: Any) -> Any:
        """The scene's training cameras, or None (with a warning: the camera-aware
        init options then do nothing)."""
        train = getattr(scene, 'train', None)
        cams = getattr(train, 'cameras', None)
        if cams is None or len(cams) == 0:
            logger.warning('GaussianSplatting: the scene has no training cameras; '
                           'random_min_views / init_max_radius are ignored')
            return None
        return cams

    @torch.no_grad()
    def cap_scales_to_footprint(self, cameras: Any, max_radius: float) -> int:
        """Shrink Gaussians whose screen radius exceeds ``max_radius`` pixels in any of
        ``cameras`` (see ``init.footprint_max_scale``); returns how many were shrunk."""
        scales = self.params['scales']
        bound = torch.log(footprint_max_scale(self.params['means'], cameras, max_radius)
                          .clamp_min(1e-7))
        # shift all three log-scales, so the largest one meets the bound and the shape
        # (e.g. ``init_scale_jitter``'s anisotropy) is kept
        excess = (scales.data.max(dim=-1).values - bound).clamp_min(0.0)
        scales.data.sub_(excess[:, None])
        n = int((excess > 0).sum())
        logger.info('GaussianSplatting: %d of %d initial Gaussians shrunk to a %.1f px screen '
                    'radius', n, self.num_gaussians, max_radius)
        return n

    @torch.no_grad()
    def init_from_points(self, points: Tensor, colors: Tensor) -> None:
        """Gaussians at ``points [P,3]`` with ``colors [P,3]`` (0..1), scales from the RMS
        distance to the ``knn`` nearest neighbours (each axis jittered by
        ``init_scale_jitter`` in log space), identity rotations."""
        n = points.shape[0]
        dist2 = knn_mean_sq_dist(points, self.knn).clamp_min(1e-7)
        log_scale = torch.log(torch.sqrt(dist2) * self.init_scale)[:, None].repeat(1, 3)
        if self.init_scale_jitter > 0:
            log_scale = log_scale + self.init_scale_jitter * torch.randn(
                n, 3, device=points.device)
        quats = torch.zeros(n, 4, device=points.device)
        quats[:, 0] = 1.0
        opacity = torch.logit(torch.full((n,), self.init_opacity, device=points.device))
        k = (self.sh_degree + 1) ** 2
        values = {
            'means': points.float(),
            'scales': log_scale,
            'quats': quats,
            'opacities': opacity,
            'sh0': rgb_to_sh0(colors.float().clamp(0, 1))[:, None, :],
            'shN': torch.zeros(n, k - 1, 3, device=points.device),
        }
        for name, value in values.items():
            self.params[name] = nn.Parameter(value.contiguous())

    # ------------------------------------------------------------------ rendering
    def _backgrounds(self, batch_size: int, device: torch.device) -> Tensor:
        spec = self.background if self.training else self.eval_background
        if spec == 'random':
            return torch.rand(batch_size, 3, device=device)
        return torch.tensor(spec, device=device, dtype=torch.float32).expand(batch_size, 3)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Activated Gaussians for the renderer (``render_inputs``)."""
        step = batch.get('step')
        p = self.params
        n_views = batch['viewmats'].shape[0]
        return dict(
            means=p['means'], quats=p['quats'], scales=torch.exp(p['scales']),
            opacities=torch.sigmoid(p['opacities']),
            colors=(p['sh0'], p['shN']),  # SH in two parts: see rasterization()
            sh_degree=self.active_sh_degree(step),
            backgrounds=self._backgrounds(n_views, p['means'].device), **self.render_requests,
            **self._training_render_mode(), **self.camera_overrides(batch))

    def _training_render_mode(self) -> dict[str, str]:
        """``{'render_mode': ...}`` for training renders (see ``train_render_mode``)."""
        mode = self.train_render_mode
        if not self.training or mode is None:
            return {}
        if mode == 'auto':
            if any(m.needs_training_depth for m in self.scene_modules.values()):
                return {}
            mode = 'RGB'
        return {'render_mode': mode}

    def target_image(self, render_results: dict[str, Any], batch: dict[str, Any]) -> Tensor:
        """Ground truth on the background used for the render ``[B,H,W,3]``."""
        image = batch['image']
        alpha = batch.get('alpha')
        bg = render_results.get('backgrounds')
        if alpha is None or bg is None:
            return image
        data_bg = self.data_background.to(image.device)
        return image + (bg.to(image.dtype) - data_bg)[:, None, None, :] * (1.0 - alpha)

    # ------------------------------------------------------------------ training
    def get_loss_dict(self, render_results: dict[str, Any],
                      batch: dict[str, Any]) -> dict[str, Tensor]:
        """``loss = (1-l) L1 + l (1-SSIM)`` (+ optional regularisers)."""
        target = self.target_image(render_results, batch)
        rgb = self.transform_rgb(render_results['rgb'], batch)
        if batch.get('mask') is not None:  # loss masks: ignored pixels leave the loss
            losses = masked_l1_ssim_loss(rgb, target, batch['mask'], self.ssim_lambda)
        else:
            losses = l1_ssim_loss(rgb, target, self.ssim_lambda, fused=self.fused_loss)
        if self.opacity_reg > 0:
            losses['opacity_reg'] = self.opacity_reg * torch.sigmoid(
                self.params['opacities']).mean()
            losses['loss'] = losses['loss'] + losses['opacity_reg']
        if self.scale_reg > 0:
            losses['scale_reg'] = self.scale_reg * torch.exp(self.params['scales']).mean()
            losses['loss'] = losses['loss'] + losses['scale_reg']
        for name, term in self.loss_terms.items():
            losses[name] = term(self.params)
            losses['loss'] = losses['loss'] + losses[name]
        for name, term in self.scene_module_losses(render_results, batch).items():
            losses[name] = term
            losses['loss'] = losses['loss'] + term
        return losses

    def get_optimizer_dict(self, loss_dict: dict[str, Tensor], render_results: dict[str, Any],
                           batch: dict[str, Any], step: int) -> dict[str, Any]:
        """What ``GaussianOptimizer.update_model`` needs; advances the model's step."""
        meta = render_results['meta']
        self.set_step(int(step) + 1)
        return dict(step=int(step), means2d=meta['means2d'], radii=meta['radii'],
                    width=int(meta['width']), height=int(meta['height']),
                    n_cameras=int(meta['n_cameras']))

    # ------------------------------------------------------------------ checkpoints
    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True,
                        assign: bool = False):
        """Load, first resizing parameters to the checkpoint's number of Gaussians."""
        if 'params.means' not in state_dict and any(k.startswith('field.') for k in state_dict):
            raise ValueError('This checkpoint holds a radiance field (field.*), but the config '
                             'builds GaussianSplatting. Use the config the checkpoint was '
                             'trained with (e.g. configs/nerf/*.py).')
        for name in list(self.params.keys()):
            value = state_dict.get(f'params.{name}')
            old = self.params[name]
            if value is not None and tuple(value.shape) != tuple(old.shape):
                self.params[name] = nn.Parameter(
                    torch.empty(value.shape, dtype=old.dtype, device=old.device),
                    requires_grad=old.requires_grad)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def extra_repr(self) -> str:
        return f'num_gaussians={self.num_gaussians}, sh_degree={self.sh_degree}'
