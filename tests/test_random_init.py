"""Camera-aware initialisation: view-restricted random points and the footprint scale cap."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nerfreg.cameras import Cameras
from nerfreg.cameras.paths import look_at
from nerfreg.models import GaussianSplatting
from nerfreg.models.init import count_views, footprint_max_scale, sample_seen_points
from nerfreg.ops.projection import project_gaussians


def _ring(n: int = 8, radius: float = 3.0, width: int = 64, height: int = 48) -> Cameras:
    """Cameras on a tilted ring looking at the origin, with different focal lengths and an
    off-centre principal point (fx != fy), so the bound is checked off the easy case."""
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    eyes = np.stack([radius * np.cos(ang), radius * np.sin(ang), 0.8 * np.sin(3 * ang)], 1)
    rot, t = look_at(eyes, np.zeros(3), np.array([0.0, 0.0, 1.0]))
    fx = np.linspace(40, 90, n)
    return Cameras(R=torch.tensor(rot, dtype=torch.float32), t=torch.tensor(t, dtype=torch.float32),
                   fx=torch.tensor(fx), fy=torch.tensor(fx * 1.2), cx=width * 0.45,
                   cy=height * 0.55, width=width, height=height)


def test_count_views_matches_per_camera_projection() -> None:
    cams = _ring()
    torch.manual_seed(0)
    pts = (torch.rand(3000, 3) * 2 - 1) * 4.0
    got = count_views(pts, cams, chunk_elems=5000)  # several chunks
    uv, z = cams.project(pts)
    want = torch.zeros(len(pts), dtype=torch.long)
    for c in range(len(cams)):
        u, v = uv[c, :, 0], uv[c, :, 1]
        want += ((z[c] > 0.01) & (u >= 0) & (u < int(cams.width[c]))
                 & (v >= 0) & (v < int(cams.height[c]))).long()
    assert torch.equal(got, want)
    assert 0 < int((got == len(cams)).sum()) < len(pts)  # the test sees both cases


@pytest.mark.parametrize('max_radius', [6.0, 12.0])
def test_footprint_cap_bounds_the_rasterizer_radius_in_every_camera(max_radius) -> None:
    cams = _ring()
    torch.manual_seed(1)
    pts = torch.cat([(torch.rand(2000, 3) * 2 - 1) * 0.5,         # dense: small k-NN scales
                     (torch.rand(400, 3) * 2 - 1) * 3.5,          # around and between cameras
                     cams.centers()[:3] + 0.05])                   # right next to cameras
    model = GaussianSplatting(sh_degree=0)
    model.init_from_points(pts, torch.rand(len(pts), 3))
    before = model.params['scales'].detach().clone()
    n = model.cap_scales_to_footprint(cams, max_radius)
    scales = torch.exp(model.params['scales'].detach())
    radii, _, depths, _ = project_gaussians(
        model.params['means'].detach(), model.params['quats'].detach(), scales,
        cams.viewmats().float(), cams.Ks().float(), int(cams.width[0]), int(cams.height[0]))
    front = depths > 0.01
    assert int(radii[front].max()) <= math.ceil(max_radius)
    # tight: some shrunk Gaussian reaches the bound in its limiting camera
    assert int(radii.max()) >= math.ceil(max_radius) - 1
    shrunk = (model.params['scales'].detach() < before).any(-1)
    assert int(shrunk.sum()) == n and 0 < n < len(pts)
    assert torch.equal(model.params['scales'].detach()[~shrunk], before[~shrunk])
    # shrunk as a whole: the jittered start's per-axis differences are kept
    after = model.params['scales'].detach()
    shape = lambda s: s - s.mean(-1, keepdim=True)  # noqa: E731
    assert torch.allclose(shape(after), shape(before), atol=1e-5)
    assert float(shape(after[shrunk]).abs().max()) > 1e-3


def test_footprint_cap_rejects_radius_below_the_filter() -> None:
    with pytest.raises(ValueError, match='eps2d'):
        footprint_max_scale(torch.zeros(1, 3), _ring(), max_radius=1.0)


def test_seen_points_are_seen_and_uniform_in_the_seen_region() -> None:
    cams = _ring()
    torch.manual_seed(2)
    center, half = torch.zeros(3), 4.0
    pts = sample_seen_points(4000, center, half, cams, 0.75, batch=20_000)
    need = math.ceil(0.75 * len(cams))
    assert pts.shape == (4000, 3)
    assert bool((count_views(pts, cams) >= need).all())
    assert bool(((pts - center).abs() <= half).all())
    # reference: plain rejection sampling from the whole cube (no box shortcut)
    ref = (torch.rand(400_000, 3) * 2 - 1) * half
    ref = ref[count_views(ref, cams) >= need]
    assert len(ref) > 2000
    assert torch.allclose(pts.mean(0), ref.mean(0), atol=0.05)
    assert torch.allclose(pts.std(0), ref.std(0), rtol=0.05)


def test_seen_points_fail_with_the_fix_named() -> None:
    cams = _ring()
    far = torch.tensor([100.0, 100.0, 100.0])  # a cube no camera sees
    with pytest.raises(ValueError, match='random_min_views'):
        sample_seen_points(10, far, 1.0, cams, 0.5, batch=1000, max_batches=3)


def _scene(cams: Cameras) -> SimpleNamespace:
    return SimpleNamespace(points=None, points_rgb=None, scene_extent=3.3,
                           scene_center=torch.zeros(3), background=None,
                           train=SimpleNamespace(cameras=cams))


def test_model_setup_uses_the_options_and_keeps_the_default() -> None:
    cams = _ring()
    torch.manual_seed(3)
    model = GaussianSplatting(sh_degree=0, num_random=2000, random_min_views=0.5,
                              init_max_radius=6.0)
    model.setup(_scene(cams))
    means = model.params['means'].detach()
    assert bool((count_views(means, cams) >= 4).all())
    scales = torch.exp(model.params['scales'].detach())
    bound = footprint_max_scale(means, cams, 6.0)
    assert bool((scales[:, 0] <= bound * (1 + 1e-5)).all())
    # default options: the same random cube as before the options existed
    torch.manual_seed(3)
    plain = GaussianSplatting(sh_degree=0, num_random=2000)
    plain.setup(_scene(cams))
    torch.manual_seed(3)
    want = (torch.rand(2000, 3) * 2 - 1) * 3.3
    assert torch.equal(plain.params['means'].detach(), want)
    with pytest.raises(ValueError, match='random_min_views'):
        GaussianSplatting(random_min_views=1.5)
