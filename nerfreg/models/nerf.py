"""Instant-NGP-style radiance field model (``MODELS``): field + occupancy grid + losses.

The model owns every learnt or evolving state (hash tables, MLPs, occupancy grid, bounds),
so checkpoints and resumption need nothing method-specific. ``forward`` hands the renderer
a query function and the grid; ``get_optimizer_dict`` (called once per completed step)
also refreshes the occupancy grid, the model-side per-step callback.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from nerfreg.ops.ray_march import GridSpec, normalise_points, pixel_rays, ray_aabb
from nerfreg.registry import MODELS

from .base import BaseModel
from .field import HashGridField
from .field_occupancy import OccupancyGrid

logger = logging.getLogger(__name__)


def _leading_rays(batch: dict[str, Any], n: int) -> dict[str, Any]:
    """A ray batch cut to the ``n`` leading rays the renderer kept (views: unchanged)."""
    if 'rays_o' not in batch or int(batch['rays_o'].shape[0]) == n:
        return batch
    return {k: v[:n] if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == len(
        batch['rays_o']) else v for k, v in batch.items()}


def _extra_slots(n_batch: int, n_extra: int, device: torch.device) -> Tensor:
    """Which of ``n_batch + n_extra`` mixed rays are extra ones (spread evenly) ``[N]``."""
    slots = torch.zeros(n_batch + n_extra, dtype=torch.bool, device=device)
    if n_extra:
        pos = ((torch.arange(n_extra, device=device) + 0.5) * (n_batch + n_extra) / n_extra)
        slots[pos.long().clamp_max(n_batch + n_extra - 1)] = True
    return slots


def _mix(batch_rows: Tensor, extra_rows: Tensor, is_extra: Tensor) -> Tensor:
    """Rows of both groups in the slots ``is_extra`` gives them, each in its own order."""
    out = batch_rows.new_empty((len(is_extra),) + tuple(batch_rows.shape[1:]))
    out[~is_extra] = batch_rows
    out[is_extra] = extra_rows.to(batch_rows.dtype)
    return out


@MODELS.register_module()
class InstantNGP(BaseModel):
    """Hash-grid radiance field trained on ray batches (``RayPipeline``).

    Args:
        field: kwargs of :class:`HashGridField` (levels, table size, resolutions, MLPs).
        grid: kwargs of :class:`OccupancyGrid` (resolution, update interval, decay, ...).
        bounds: 'aabb' (bounded object inside ``aabb``) or 'contract' (unbounded scene: the
            mip-NeRF 360 contraction around the scene centre, unit radius ``scene_radius``).
        aabb: ``[xmin, ymin, zmin, xmax, ymax, zmax]`` for 'aabb'.
        scene_radius: inner radius for 'contract' (default: the dataset's ``scene_extent``,
            which encloses all training cameras).
        render_step_size: marching step (default: the grid diagonal / 1024, as instant-ngp).
        cone_angle: step growth with distance (0: constant steps; 1/256 for unbounded).
        shell_samples: 'contract' only: about this many samples per grid cell along a ray
            through the contracted shell (steps of at least ``4 radius n^2 / (res *
            shell_samples)`` at ``n`` radii from the centre: linear in disparity, as
            mip-NeRF 360 samples far away). None or 0: cone steps only (hundreds of
            samples per far cell).
        near, far: ray range ('aabb' clips to the box; 'contract' default far: 1e3 radii).
        max_samples: cap on samples per ray.
        background: 'white' | 'black' | 'random' | [r, g, b] (random: a colour per ray).
        eval_background: background at evaluation (default: ``background``; black when
            that is 'random').
        t_min: early ray termination transmittance.
        backend: 'auto' | 'cpu' (Numba kernels) | 'torch' (reference, CUDA).
    """

    def __init__(self, field: dict | None = None, grid: dict | None = None,
                 bounds: str = 'aabb',
                 aabb: Sequence[float] = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5),
                 scene_radius: float | None = None, render_step_size: float | None = None,
                 cone_angle: float = 0.0, shell_samples: float | None = 2.0,
                 near: float = 0.0, far: float | None = None,
                 max_samples: int = 1024, background: Any = 'white',
                 eval_background: Any = None, t_min: float = 1e-4,
                 backend: str = 'auto') -> None:
        super().__init__()
        if bounds not in ('aabb', 'contract'):
            raise ValueError(f"model.bounds must be 'aabb' or 'contract', got {bounds!r}")
        if len(aabb) != 6 or any(aabb[i] >= aabb[i + 3] for i in range(3)):
            raise ValueError(f'model.aabb must be [xmin, ymin, zmin, xmax, ymax, zmax] with '
                             f'min < max, got {list(aabb)}')
        self.bounds = bounds
        self.aabb = tuple(float(v) for v in aabb)
        self.scene_radius = scene_radius
        self.render_step_size = render_step_size
        self.cone_angle = float(cone_angle)
        self.shell_samples = float(shell_samples or 0.0)
        if self.shell_samples < 0:
            raise ValueError(f'model.shell_samples must be >= 0, got {shell_samples}')
        self.near = float(near)
        self.far = far
        self.max_samples = int(max_samples)
        self.set_backgrounds(background, eval_background)
        self.t_min = float(t_min)
        self.backend = backend
        self.field = HashGridField(**dict(field or {}), backend=backend)
        self.grid = OccupancyGrid(**dict(grid or {}))
        self.register_buffer('step', torch.zeros((), dtype=torch.long))
        self.register_buffer('data_background', torch.zeros(3))
        # contraction centre and radius (set from the scene; saved so that inference
        # without the dataset sees the same bounds)
        self.register_buffer('center', torch.zeros(3))
        self.register_buffer('radius', torch.ones(()))

    # ------------------------------------------------------------------ geometry
    @property
    def spec(self) -> GridSpec:
        if self.bounds == 'aabb':
            lo, hi = self.aabb[:3], self.aabb[3:]
            diag = math.dist(lo, hi)
            center, radius = tuple(0.5 * (a + b) for a, b in zip(lo, hi)), 0.5 * diag
        else:
            center = tuple(float(v) for v in self.center)
            radius = float(self.radius)
            lo = tuple(c - 2 * radius for c in center)
            hi = tuple(c + 2 * radius for c in center)
            diag = 2 * math.sqrt(3) * radius  # the inner cube's diagonal
        step = self.render_step_size or diag / 1024
        shell = 4.0 * radius / (self.grid.res * self.shell_samples) if (
            self.bounds == 'contract' and self.shell_samples > 0) else 0.0
        return GridSpec(self.bounds, lo, hi, center, radius, self.grid.res, float(step),
                        1e10 if self.cone_angle > 0 else float(step), self.cone_angle,
                        shell)

    def ray_range(self, origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
        """Marching interval of each ray."""
        spec = self.spec
        if self.bounds == 'aabb':
            lo = torch.tensor(spec.lo, dtype=origins.dtype, device=origins.device)
            hi = torch.tensor(spec.hi, dtype=origins.dtype, device=origins.device)
            t_near, t_far = ray_aabb(origins, dirs, lo, hi, self.near)
            if self.far is not None:
                t_far = t_far.clamp_max(float(self.far))
            return t_near, t_far
        far = float(self.far) if self.far is not None else 1e3 * spec.radius
        return (torch.full_like(origins[:, 0], self.near),
                torch.full_like(origins[:, 0], far))

    @torch.no_grad()
    def depth_range(self, cameras: Any) -> tuple[float, float]:
        """Near/far of the scene bounds seen from ``cameras`` (one colour scale for depth
        videos): box corners for 'aabb', the contraction's inner ball for 'contract'."""
        centers = cameras.centers().float().cpu()
        if self.bounds == 'aabb':
            lo, hi = self.aabb[:3], self.aabb[3:]
            corners = torch.tensor([[hi[0] if i & 1 else lo[0], hi[1] if i & 2 else lo[1],
                                     hi[2] if i & 4 else lo[2]] for i in range(8)])
            dist = torch.cdist(centers, corners)
            return max(float(dist.min()), 1e-3), float(dist.max())
        dist = (centers - self.center.cpu()).norm(dim=1)
        radius = float(self.radius)
        return max(float((dist - radius).min()), self.near, 1e-3), float(dist.max()) + radius

    # ------------------------------------------------------------------ setup
    @torch.no_grad()
    def setup(self, scene: Any) -> None:
        """Bounds from the scene; refuse cameras that the configured bounds cannot serve."""
        bg = getattr(scene, 'background', None)
        if bg is not None:
            self.data_background.copy_(torch.as_tensor(bg, dtype=torch.float32).reshape(3))
        cams = scene.train.cameras
        centers = cams.centers().float().cpu()
        if self.bounds == 'contract':
            center = torch.as_tensor(getattr(scene, 'scene_center', centers.mean(0)),
                                     dtype=torch.float32).reshape(3)
            radius = float(self.scene_radius or getattr(scene, 'scene_extent', 1.0) or 1.0)
            self.center.copy_(center)
            self.radius.fill_(radius)
            far = (centers - center).norm(dim=1)
            if bool((far > radius * 1.5).any()):
                raise ValueError(
                    f'{int((far > radius * 1.5).sum())} training cameras lie farther than 1.5x '
                    f'model.scene_radius={radius:.3g} from the scene centre (max '
                    f'{float(far.max()):.3g}); the contraction would squeeze them into its '
                    'outer shell. Raise model.scene_radius.')
            return
        # aabb: every training camera must see the box
        cams = cams.to('cpu')
        hits = []
        for i in range(len(cams)):
            w, h = int(cams.width[i]), int(cams.height[i])
            xs = torch.linspace(0, w - 1, 9).round().long()
            ys = torch.linspace(0, h - 1, 9).round().long()
            pix = torch.stack(torch.meshgrid(xs, ys, indexing='xy'), -1).reshape(-1, 2)
            o, d = pixel_rays(cams[[i]], w, h, pix, torch.zeros(len(pix), dtype=torch.long))
            t0, t1 = self.ray_range(o.float(), d.float())
            hits.append(bool((t1 > t0).any()))
        missing = [cams.names[i] for i, ok in enumerate(hits) if not ok]
        if missing:
            raise ValueError(
                f'{len(missing)} of {len(cams)} training cameras (e.g. {missing[:3]}) do not see '
                f'the configured box model.aabb={list(self.aabb)}: the scene lies outside the '
                "bounds. Enlarge model.aabb, or use model.bounds='contract' for unbounded "
                'scenes.')

    # ------------------------------------------------------------------ queries
    def query(self, x: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
        """Density and colour at world points ``x`` seen along unit ``dirs``."""
        return self.field(normalise_points(x, self.spec), dirs)

    def query_density(self, x: Tensor) -> Tensor:
        return self.field.density(normalise_points(x, self.spec))[0]

    def set_step(self, step: int) -> None:
        """Tell the model which training step comes next."""
        self.step.fill_(int(step))

    def _backgrounds(self, n: int, device: torch.device) -> Tensor:
        spec = self.background if self.training else self.eval_background
        if spec == 'random':
            return torch.rand(n, 3, device=device)
        return torch.tensor(spec, device=device, dtype=torch.float32).expand(n, 3)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """What the volume renderer needs: query functions, grid, bounds, backgrounds (one
        per ray for ray batches, one per view for whole views)."""
        device = self.step.device
        n = int(batch['rays_o'].shape[0]) if 'rays_o' in batch else int(
            batch['viewmats'].shape[0])
        inputs = dict(query=self.query, ray_range=self.ray_range, grid=self.grid.binary,
                      spec=self.spec, max_samples=self.max_samples, t_min=self.t_min,
                      backend=self.backend, jitter=self.training,
                      backgrounds=self._backgrounds(n, device), **self.camera_overrides(batch))
        if self.training and 'rays_o' in batch and batch.get('split') == 'train':
            inputs = self._with_extra_rays(inputs, batch)
        return inputs

    def _with_extra_rays(self, inputs: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
        """Mix the rays the scene modules ask for (``extra_rays``; camera corrections
        applied) evenly into the batch's rays, each group keeping its order; the batch
        records them for the loss. The renderer's sample budget keeps leading rays, so a cut
        batch keeps a proportional share of both groups."""
        extra = batch['extra_rays'] = self.extra_rays(batch)
        if not extra:
            return inputs
        origins, dirs = [], []
        for rays in extra.values():
            moved = self.camera_overrides(rays)
            origins.append(moved.get('rays_o', rays['rays_o']))
            dirs.append(moved.get('rays_d', rays['rays_d']))
        is_extra = _extra_slots(int(batch['rays_o'].shape[0]), sum(len(o) for o in origins),
                                self.step.device)
        backgrounds = self._backgrounds(int(is_extra.sum()), self.step.device)
        return {**inputs, **{key: _mix(inputs.get(key, batch.get(key)), torch.cat(add),
                                       is_extra)
                             for key, add in (('rays_o', origins), ('rays_d', dirs),
                                              ('backgrounds', [backgrounds]))}}

    @staticmethod
    def _split_extra_rays(render_results: dict[str, Any], batch: dict[str, Any]
                          ) -> dict[str, Any]:
        """Render results of the batch's rays, with those of the extra rays the renderer
        kept under ``extra_rays[section]`` (the rays, cut to the kept ones, and ``render``)."""
        extra = batch.get('extra_rays') or {}
        if not extra:
            return render_results
        n = int(render_results['rgb'].shape[0])
        is_extra = _extra_slots(int(batch['rays_o'].shape[0]),
                                sum(len(r['rays_o']) for r in extra.values()),
                                render_results['rgb'].device)[:n]
        keys = ('rgb', 'depth', 'alpha', 'backgrounds')
        out = {key: value[~is_extra] if key in keys else value
               for key, value in render_results.items()}
        kept = {key: render_results[key][is_extra] for key in keys[:3]}
        out['extra_rays'], start = {}, 0
        for name, rays in extra.items():
            m = min(len(rays['rays_o']), max(0, int(is_extra.sum()) - start))
            if m:
                render = {key: value[start:start + m] for key, value in kept.items()}
                out['extra_rays'][name] = {
                    **{k: v[:m] if torch.is_tensor(v) and v.dim() else v
                       for k, v in rays.items()}, 'render': render}
            start += len(rays['rays_o'])
        return out

    def target_image(self, render_results: dict[str, Any], batch: dict[str, Any]) -> Tensor:
        """Ground truth re-composited on the render's background (views or rays)."""
        image, alpha = batch['image'], batch.get('alpha')
        if image.dim() == 2:  # ray batch: the renderer may have kept only the leading rays
            n = int(render_results['rgb'].shape[0])
            image, alpha = image[:n], None if alpha is None else alpha[:n]
        bg = render_results.get('backgrounds')
        if alpha is None or bg is None:
            return image
        bg = bg.to(image.dtype) - self.data_background.to(image.device)
        if image.dim() == 4:
            bg = bg[:, None, None, :]
        return image + bg * (1.0 - alpha)

    # ------------------------------------------------------------------ training
    def get_loss_dict(self, render_results: dict[str, Any],
                      batch: dict[str, Any]) -> dict[str, Tensor]:
        """Mean squared colour error over the rendered rays (+ scene-module terms)."""
        render_results = self._split_extra_rays(render_results, batch)
        target = self.target_image(render_results, batch)
        n = render_results['rgb'].shape[0]
        rgb = self.transform_rgb(render_results['rgb'], _leading_rays(batch, n))
        mask = _leading_rays(batch, n).get('mask')
        if mask is None:
            mse = torch.mean((rgb - target) ** 2)
        else:  # loss masks: ignored rays leave the loss
            mse = ((rgb - target) ** 2 * mask).sum() / (mask.sum() * 3).clamp_min(1e-8)
        losses = {'loss': mse, 'mse': mse.detach(),
                  'psnr': -10.0 * torch.log10(mse.detach().clamp_min(1e-10)),
                  'samples_per_ray': torch.tensor(
                      float(render_results['meta']['n_samples']) / max(1, n)),
                  'rays': torch.tensor(float(n)),
                  'occupancy': torch.tensor(self.grid.occupied_fraction())}
        for name, term in self.scene_module_losses(render_results,
                                                   _leading_rays(batch, n)).items():
            losses[name] = term
            losses['loss'] = losses['loss'] + term
        return losses

    def get_optimizer_dict(self, loss_dict: dict[str, Tensor], render_results: dict[str, Any],
                           batch: dict[str, Any], step: int) -> dict[str, Any]:
        """Advance the step and refresh the occupancy grid on its schedule."""
        self.set_step(int(step) + 1)
        self.grid.update(int(step), self.spec, self.query_density, self.spec.dt_min)
        return dict(step=int(step))

    # ------------------------------------------------------------------ checkpoints
    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True,
                        assign: bool = False):
        """Load; a Gaussian-splatting checkpoint is refused with a clear message."""
        if any(k.startswith('params.') for k in state_dict):
            raise ValueError(
                'This checkpoint holds Gaussian splats (params.means, ...), but the config '
                f'builds {type(self).__name__}, a radiance field. Use the config the checkpoint '
                'was trained with (e.g. configs/gaussian_splatting/*.py).')
        tables = state_dict.get('field.tables')
        if tables is not None and tuple(tables.shape) != tuple(self.field.tables.shape):
            raise ValueError(f'checkpoint hash tables {tuple(tables.shape)} do not match the '
                             f'config ({tuple(self.field.tables.shape)}): model.field differs '
                             'from the one the checkpoint was trained with.')
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    #: why no exporter takes this model (the export error quotes it)
    export_hint = ('a radiance field has no points or splats, so it cannot be exported to '
                   'PLY/.splat. Render it instead (tools/render.py for a video, tools/test.py '
                   'for test views and metrics).')

    def extra_repr(self) -> str:
        return (f'bounds={self.bounds}, levels={len(self.field.resolutions)}, '
                f'grid={self.grid.res}^3')
