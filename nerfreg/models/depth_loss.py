"""``SparseDepthLoss`` (``MODELS``, config section ``depth_loss``): rendered expected depth
supervised at the SfM points each training image observed.

For training view ``i`` the COLMAP points of its track (``scene.observed_points[name]``,
in the dataset's frame) are projected with the view's camera (the corrected one when
``camera_opt`` is on); the rendered expected depth is sampled bilinearly at their pixels and
compared in inverse depth, scaled by the scene extent so that the weight is scale-free:
``weight * mean |extent / d_render - extent / z_point|`` over the points in front of the
camera, inside the image and where the render is opaque (alpha > ``min_alpha``).

Whole-view training (splatting) needs a depth render mode ('RGB+ED'). Ray-batch training
(fields) asks the model for extra rays (``extra_rays``): each step ``rays_per_step``
observations of the step's images (a draw seeded by the step, so resuming is exact), each
a ray from the camera centre through the SfM point (i.e. through its pixel), with the
point's distance along the ray as target; the model renders them with the batch (camera
corrections applied) and the same inverse-depth L1 is taken on their expected depth.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfreg.registry import MODELS

from .scene_modules import SceneModule, is_training_view


def sample_image(image: Tensor, uv: Tensor) -> Tensor:
    """Bilinear samples ``[K,C]`` of ``image [H,W,C]`` at pixel positions ``uv [K,2]``
    (pixel (i, j) has its centre at (i + 0.5, j + 0.5))."""
    h, w = image.shape[:2]
    grid = torch.stack([2 * uv[:, 0] / w - 1, 2 * uv[:, 1] / h - 1], -1).to(image.dtype)
    out = F.grid_sample(image.permute(2, 0, 1)[None], grid[None, None], mode='bilinear',
                        padding_mode='border', align_corners=False)
    return out[0, :, 0].T


def project(points: Tensor, viewmat: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel positions ``[K,2]`` and camera depths ``[K]`` of world ``points [K,3]``, seen by
    one camera (``viewmat [4,4]``, ``K [3,3]``) or each by its own (``[K,4,4]``, ``[K,3,3]``)."""
    cam = (viewmat[..., :3, :3] @ points[..., None])[..., 0] + viewmat[..., :3, 3]
    z = cam[:, 2]
    uv = torch.stack([K[..., 0, 0] * cam[:, 0] / z + K[..., 0, 2],
                      K[..., 1, 1] * cam[:, 1] / z + K[..., 1, 2]], -1)
    return uv, z


@MODELS.register_module()
class SparseDepthLoss(SceneModule):
    """Inverse-depth L1 at the observed SfM points (see the module docstring).

    Args:
        weight: loss weight.
        min_alpha: ignore points where the render is more transparent than this.
        rays_per_step: observations rendered as extra rays per ray-batch step (fields).
    """

    needs_training_depth = True

    def __init__(self, weight: float = 0.001, min_alpha: float = 0.5,
                 rays_per_step: int = 256) -> None:
        super().__init__()
        self.weight, self.min_alpha = float(weight), float(min_alpha)
        self.rays_per_step = int(rays_per_step)
        if self.rays_per_step < 1:
            raise ValueError(f'depth_loss.rays_per_step must be >= 1, got {rays_per_step}')
        # observed points of every training image, concatenated (not saved: derived data)
        self.register_buffer('points', torch.zeros(0, 3), persistent=False)
        self.register_buffer('offsets', torch.zeros(1, dtype=torch.long), persistent=False)
        self.register_buffer('extent', torch.ones(()), persistent=False)
        # per point: its training image; per image: centre, view matrix, K, (w, h)
        self.register_buffer('point_cam', torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer('centers', torch.zeros(0, 3), persistent=False)
        self.register_buffer('viewmats', torch.zeros(0, 4, 4), persistent=False)
        self.register_buffer('Ks', torch.zeros(0, 3, 3), persistent=False)
        self.register_buffer('sizes', torch.zeros(0, 2), persistent=False)

    @torch.no_grad()
    def setup(self, scene: Any) -> None:
        observed = getattr(scene, 'observed_points', None)
        if not observed:
            raise ValueError(f'depth_loss needs the SfM points each training image observed; '
                             f'{type(scene).__name__} has none (use a COLMAP scene with a '
                             'sparse model, or set depth_loss.enabled=False)')
        per_view = [observed.get(name, torch.zeros(0, 3)) for name in scene.train.names]
        counts = torch.tensor([len(p) for p in per_view])
        self.points = torch.cat(per_view).float()
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        self.extent = torch.tensor(float(getattr(scene, 'scene_extent', 1.0) or 1.0))
        cams = scene.train.cameras.to('cpu')
        self.point_cam = torch.repeat_interleave(torch.arange(len(counts)), counts)
        self.centers = cams.centers().float()
        self.viewmats, self.Ks = cams.viewmats().float(), cams.Ks().float()
        self.sizes = torch.stack([torch.as_tensor(cams.width), torch.as_tensor(cams.height)],
                                 1).float()

    def extra_rays(self, batch: dict[str, Any], step: int) -> dict[str, Any]:
        """Rays through observed SfM points of the step's images (ray batches only)."""
        if not is_training_view(batch) or 'rays_o' not in batch or self.point_cam.numel() == 0:
            return {}
        dev = self.points.device
        images = torch.unique(batch['cam_index'].to(dev))
        candidates = torch.isin(self.point_cam, images).nonzero()[:, 0]
        if candidates.numel() == 0:
            return {}
        gen = torch.Generator().manual_seed(int(step))
        pick = candidates[torch.randint(len(candidates), (self.rays_per_step,),
                                        generator=gen).to(dev)]
        cam, x = self.point_cam[pick], self.points[pick]
        rel = x - self.centers[cam]
        dist = rel.norm(dim=1)
        uv, z = project(x, self.viewmats[cam], self.Ks[cam])
        size = self.sizes[cam]
        keep = (z > 1e-6) & (dist > 1e-6) & (uv >= 0).all(1) & (uv < size).all(1)
        return dict(rays_o=self.centers[cam][keep], rays_d=rel[keep] / dist[keep, None],
                    cam_index=cam[keep], depth=dist[keep], split='train')

    def ray_loss(self, extra: dict[str, Any]) -> dict[str, Tensor]:
        """The inverse-depth L1 on the rendered extra rays (where they are opaque)."""
        render = extra['render']
        opaque = render['alpha'].detach()[:, 0] > self.min_alpha
        if not bool(opaque.any()):
            return {}
        d = render['depth'][opaque, 0].clamp_min(1e-6)
        ext = self.extent.to(d.dtype)
        err = (ext / d - ext / extra['depth'][opaque].to(d.dtype)).abs().mean()
        return {'depth_loss': self.weight * err}

    def view_loss(self, depth: Tensor, alpha: Tensor, points: Tensor, viewmat: Tensor,
                  K: Tensor) -> Tensor | None:
        """Mean inverse-depth error of one view (None when no point is usable)."""
        h, w = depth.shape[:2]
        uv, z = project(points, viewmat, K)
        inside = (z > 1e-6) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        if not bool(inside.any()):
            return None
        uv, z = uv[inside], z[inside]
        opaque = sample_image(alpha.detach(), uv)[:, 0] > self.min_alpha
        if not bool(opaque.any()):
            return None
        d = sample_image(depth, uv[opaque])[:, 0].clamp_min(1e-6)
        ext = self.extent.to(d.dtype)
        return (ext / d - ext / z[opaque]).abs().mean()

    def loss_terms(self, render_results: dict[str, Any], batch: dict[str, Any],
                   overrides: dict[str, Any]) -> dict[str, Tensor]:
        if not is_training_view(batch) or self.points.shape[0] == 0:
            return {}
        if 'rays_o' in batch:
            if 'extra_rays' not in batch:
                raise ValueError('depth_loss on ray batches needs a model that renders the '
                                 'extra rays scene modules ask for (BaseModel.extra_rays, as '
                                 'InstantNGP does); set depth_loss.enabled=False for this model')
            extra = render_results.get('extra_rays')
            return {} if extra is None else self.ray_loss(extra)
        if render_results.get('depth') is None:
            raise ValueError("depth_loss needs a depth render: set renderer.render_mode="
                             "'RGB+ED'")
        viewmats = overrides.get('viewmats', batch['viewmats'])
        terms = []
        for b, i in enumerate(batch['index'].tolist()):
            pts = self.points[int(self.offsets[i]):int(self.offsets[i + 1])]
            term = self.view_loss(render_results['depth'][b], render_results['alpha'][b],
                                  pts.to(viewmats.dtype), viewmats[b], batch['Ks'][b])
            if term is not None:
                terms.append(term)
        if not terms:
            return {}
        return {'depth_loss': self.weight * torch.stack(terms).mean()}
