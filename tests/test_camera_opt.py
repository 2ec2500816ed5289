"""Camera pose refinement (``camera_opt``): numeric gradients, a recovered pose offset,
ray corrections equal to re-generated rays, and the trainer integration on both families."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from nerfreg.cameras import Cameras
from nerfreg.engine import DefaultTrainer
from nerfreg.models.camera_opt import (
    CameraOptimizer,
    correction_matrices,
    gauge_basis,
    invert_rigid,
    skew,
)
from nerfreg.ops.projection import project_gaussians
from nerfreg.ops.ray_march import pixel_rays
from nerfreg.utils.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _look_at_cameras(n: int, size: int = 32, dtype=torch.float32) -> Cameras:
    """``n`` cameras on a circle of radius 4 looking at the origin."""
    rs, ts = [], []
    for i in range(n):
        a = 2 * math.pi * i / n
        c = torch.tensor([4 * math.cos(a), 4 * math.sin(a), 1.0], dtype=torch.float64)
        z = -c / c.norm()
        x = torch.linalg.cross(z, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
        x = x / x.norm()
        y = torch.linalg.cross(z, x)
        r = torch.stack([x, y, z])
        rs.append(r)
        ts.append(-r @ c)
    return Cameras(R=torch.stack(rs).to(dtype), t=torch.stack(ts).to(dtype), fx=size,
                   fy=size, cx=size / 2, cy=size / 2, width=size, height=size,
                   names=[f'c{i}' for i in range(n)])


def _module(cams: Cameras, mode: str, dtype=torch.float32, gauge: str = 'similarity'
            ) -> CameraOptimizer:
    module = CameraOptimizer(mode=mode, gauge=gauge)
    module.setup(SimpleNamespace(train=SimpleNamespace(cameras=cams), scene_extent=2.0))
    return module.to(dtype)


@pytest.mark.parametrize('mode', ['SO3xR3', 'SE3'])
def test_pose_correction_gradient_matches_finite_differences(mode):
    """d(projected means)/d(correction) through the corrected viewmats, float64."""
    torch.manual_seed(0)
    cams = _look_at_cameras(3, dtype=torch.float64)
    module = _module(cams, mode, torch.float64, gauge='none')
    means = torch.randn(20, 3, dtype=torch.float64) * 0.5
    quats = torch.randn(20, 4, dtype=torch.float64)
    scales = torch.rand(20, 3, dtype=torch.float64) * 0.2 + 0.05
    batch = dict(split='train', index=torch.tensor([2, 0]), viewmats=cams.viewmats()[[2, 0]])
    ks = cams.Ks()[[2, 0]]

    def projected(delta):
        d = correction_matrices(delta[batch['index']], mode, 2.0)
        viewmats = invert_rigid(d) @ batch['viewmats']
        _, means2d, depths, conics, *_ = project_gaussians(means, quats, scales, viewmats, ks,
                                                           32, 32)
        return means2d, depths, conics

    delta = (torch.randn(3, 6, dtype=torch.float64) * 0.05).requires_grad_()
    assert torch.autograd.gradcheck(projected, (delta,), eps=1e-6, atol=1e-6)
    # the module applies the same correction the function above differentiates
    with torch.no_grad():
        module.delta.copy_(delta)
    ref = invert_rigid(correction_matrices(delta[batch['index']], mode, 2.0)) @ batch['viewmats']
    assert torch.allclose(module.camera_overrides(batch)['viewmats'], ref)


def test_zero_correction_is_identity_and_so3_matches_rodrigues():
    cams = _look_at_cameras(2)
    module = _module(cams, 'SO3xR3')
    batch = dict(split='train', index=torch.tensor([1]), viewmats=cams.viewmats()[[1]],
                 camera=cams[[1]])
    out = module.camera_overrides(batch)
    assert torch.equal(out['viewmats'], batch['viewmats'])
    assert module.camera_overrides({**batch, 'split': 'test'}) == {}  # held-out: recorded pose
    w = torch.tensor([[0.3, -0.2, 0.1, 0.0, 0.0, 0.0]], dtype=torch.float64)
    theta = float(w[0, :3].norm())
    k = w[0, :3] / theta
    kx = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]],
                      dtype=torch.float64)
    rodrigues = torch.eye(3, dtype=torch.float64) + math.sin(theta) * kx + (
        1 - math.cos(theta)) * kx @ kx
    assert torch.allclose(correction_matrices(w)[0, :3, :3], rodrigues, atol=1e-12)


@pytest.mark.parametrize('mode', ['SO3xR3', 'SE3'])
def test_ray_corrections_equal_rays_of_the_corrected_cameras(mode):
    """Fields: correcting ray batches equals generating rays from corrected cameras, and the
    corrected ``camera`` of a view batch matches its corrected viewmats."""
    torch.manual_seed(1)
    cams = _look_at_cameras(4)
    module = _module(cams, mode)
    with torch.no_grad():
        module.delta.copy_(torch.randn(4, 6) * 0.05)
    cam_index = torch.randint(0, 4, (50,))
    pix = torch.randint(0, 32, (50, 2))
    o, d = pixel_rays(cams, 0, 0, pix, cam_index)
    out = module.camera_overrides(dict(split='train', rays_o=o, rays_d=d, cam_index=cam_index))
    o2, d2 = pixel_rays(module.corrected_cameras(cams), 0, 0, pix, cam_index)
    assert torch.allclose(out['rays_o'], o2, atol=1e-5)
    assert torch.allclose(out['rays_d'], d2, atol=1e-5)
    view = dict(split='train', index=torch.tensor([3]), viewmats=cams.viewmats()[[3]],
                camera=cams[[3]])
    got = module.camera_overrides(view)
    assert torch.allclose(got['camera'].viewmats(), got['viewmats'], atol=1e-6)
    assert torch.allclose(module.corrected_cameras(cams)[[3]].viewmats(), got['viewmats'],
                          atol=1e-5)


def test_gauge_basis_is_the_first_order_effect_of_a_common_similarity():
    """Moving all cameras by one small world similarity (rotation W, translation u, scale s
    about their centroid) changes each camera-frame correction by ``basis @ (W, u, s)``; the
    module projects exactly those corrections out and keeps the rest."""
    cams = _look_at_cameras(5, dtype=torch.float64)
    ext = 2.0
    g = torch.tensor([0.3, -0.2, 0.5, 0.4, 0.1, -0.3, 0.2], dtype=torch.float64) * 1e-5
    rot = torch.linalg.matrix_exp(skew(g[:3]))
    centres = cams.centers()
    m = centres.mean(0)
    moved = m + (1 + g[6]) * (centres - m) @ rot.T + g[3:6] * ext
    c2w_rot = cams.R.transpose(1, 2)
    d_rot = c2w_rot.transpose(1, 2) @ rot @ c2w_rot  # c2w^-1 c2w' (rotation part)
    omega = torch.stack([d_rot[:, 2, 1] - d_rot[:, 1, 2], d_rot[:, 0, 2] - d_rot[:, 2, 0],
                         d_rot[:, 1, 0] - d_rot[:, 0, 1]], -1) / 2
    v = (cams.R @ (moved - centres)[..., None])[..., 0] / ext
    exact = torch.cat([omega, v], -1).reshape(-1)
    basis = gauge_basis(cams.R, centres / ext, 7)
    assert torch.allclose(basis @ g, exact, rtol=1e-4, atol=1e-12)
    module = _module(cams, 'SO3xR3', torch.float64)
    module.extent.fill_(ext)
    torch.manual_seed(2)
    free = torch.randn(5, 6, dtype=torch.float64) * 1e-3
    with torch.no_grad():
        module.delta.copy_((basis @ (g * 1e3)).view(5, 6) + free)
    eff = module.effective_delta().detach()
    # no common motion is left (the projection is stored in float32: ~1e-7 relative)
    assert float((basis.T @ eff.reshape(-1)).abs().max()) < 1e-8
    # and what is not a common motion passes unchanged
    kept = free.reshape(-1) - basis @ (torch.linalg.pinv(basis) @ free.reshape(-1))
    assert torch.allclose(eff.reshape(-1), kept, atol=1e-8)
    assert float((kept - free.reshape(-1)).norm()) < 0.9 * float(free.norm())
    rigid = _module(cams, 'SO3xR3', torch.float64, gauge='rigid')
    assert rigid.gauge_span.shape == (30, 6)
    with pytest.raises(ValueError, match='camera_opt.gauge'):
        CameraOptimizer(gauge='affine')


@pytest.mark.slow
def test_known_pose_offset_is_recovered_by_rendering():
    """Render a fixed Gaussian scene from true cameras; start from cameras rotated by ~1.5 deg
    and shifted; optimising only the corrections recovers most of the offset."""
    from nerfreg.ops import rasterization
    torch.manual_seed(0)
    true = _look_at_cameras(2, size=48)
    n = 300
    means = torch.randn(n, 3) * 0.6
    quats = torch.randn(n, 4)
    scales = torch.rand(n, 3) * 0.08 + 0.04
    opac = torch.full((n,), 0.8)
    colors = torch.rand(n, 3)

    def render(viewmats, ks):
        img, _, _ = rasterization(means, quats, scales, opac, colors, viewmats, ks, 48, 48,
                                  backend='auto')
        return img
    with torch.no_grad():
        target = render(true.viewmats(), true.Ks())
    offset = torch.tensor([[0.02, -0.015, 0.01, 0.02, -0.01, 0.015],
                           [-0.01, 0.02, -0.02, -0.015, 0.02, 0.01]])
    wrong = CameraOptimizer()
    wrong.setup(SimpleNamespace(train=SimpleNamespace(cameras=true), scene_extent=2.0))
    with torch.no_grad():
        wrong.delta.copy_(offset)
    perturbed = wrong.corrected_cameras(true)  # the recorded (wrong) poses
    module = _module(perturbed, 'SO3xR3')
    opt = torch.optim.Adam([module.delta], lr=3e-3)
    batch = dict(split='train', index=torch.arange(2), viewmats=perturbed.viewmats())

    def pose_error(cams):
        rel = cams.R @ true.R.transpose(1, 2)
        ang = torch.arccos(((rel.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))
        return float(ang.mean()), float((cams.centers() - true.centers()).norm(dim=1).mean())
    rot0, trans0 = pose_error(perturbed)
    for _ in range(100):
        opt.zero_grad()
        loss = (render(module.camera_overrides(batch)['viewmats'], true.Ks())
                - target).abs().mean()
        loss.backward()
        opt.step()
    rot1, trans1 = pose_error(module.corrected_cameras(perturbed))
    assert rot1 < 0.3 * rot0 and trans1 < 0.3 * trans0, (rot0, rot1, trans0, trans1)


def _gs_cfg(tmp_path: Path, work: str, steps: int = 6, **overrides):
    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / 'demo.py')
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / work), 'device': 'cpu', 'seed': 3, 'custom_hooks': [],
        'data.data_root': str(tmp_path / 'scene'), 'data.image_size': 24, 'data.n_train': 5,
        'data.n_val': 1, 'data.n_test': 2, 'data.num_points': 200,
        'train_cfg.max_steps': steps, 'train_cfg.val_interval': 0,
        'default_hooks.checkpoint.interval': 1000, **overrides})
    return cfg


def test_trainer_hands_camera_opt_to_the_splatting_model(tmp_path):
    off = DefaultTrainer.from_cfg(_gs_cfg(tmp_path, 'off'))
    assert len(off.model.scene_modules) == 0
    assert 'camera_opt' not in off.optimizer.get_lr()
    cfg = _gs_cfg(tmp_path, 'on', **{'camera_opt.enabled': True, 'camera_opt.lr': 2e-3})
    trainer = DefaultTrainer.from_cfg(cfg)
    module = trainer.model.scene_modules['camera_opt']
    assert module.delta.shape == (5, 6) and not module.delta.any()
    assert trainer.optimizer.get_lr()['camera_opt'] == pytest.approx(2e-3)  # from the section
    trainer.train()
    assert module.delta.abs().sum() > 0  # every seen view moved
    assert trainer.optimizer.get_lr()['camera_opt'] < 2e-3  # its own schedule decays it
    assert 'scene_modules.camera_opt.delta' in trainer.state_dict()['model']
    # held-out views render from their recorded poses: metrics equal a model without it
    metrics = trainer.test()
    assert metrics['psnr'] > 0


def test_field_ray_batches_refine_camera_positions_too(tmp_path):
    """Ray-batch fields (compiled hash encoding on the CPU) pass gradients to the sample
    positions, so a camera's translation is refined, not only its rotation (which also
    reaches the view directions). With no gauge, nothing else could move it."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from test_nerf_train import _cfg
    cfg = _cfg(tmp_path, 'field', **{'camera_opt.enabled': True, 'camera_opt.lr': 1e-3,
                                     'camera_opt.gauge': 'none', 'train_cfg.max_steps': 6})
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.train()
    delta = trainer.model.scene_modules['camera_opt'].delta.detach()
    assert delta[:, :3].abs().sum() > 0 and delta[:, 3:].abs().sum() > 0, delta
