"""GaussianSplatting model: init, forward, backgrounds, checkpoints, and a short training
run through the trainer contract with densification on a synthetic scene."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import pytest
import torch

from nerfreg.models import GaussianSplatting
from nerfreg.models.init import SH_C0, knn_mean_sq_dist
from nerfreg.models.scene_modules import SceneModule
from nerfreg.ops import rasterization
from nerfreg.registry import MODELS, OPTIMIZERS, PARAM_SCHEDULERS, RENDERERS


def look_at(center: list[float]) -> torch.Tensor:
    """World-to-camera [4, 4] (OpenCV axes) of a camera at ``center`` looking at 0, z up."""
    c = torch.tensor(center, dtype=torch.float32)
    f = torch.nn.functional.normalize(-c, dim=0)
    r = torch.nn.functional.normalize(torch.linalg.cross(f, torch.tensor([0.0, 0, 1])), dim=0)
    d = torch.linalg.cross(f, r)
    rot = torch.stack([r, d, f])
    m = torch.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = -rot @ c
    return m


def ring_cameras(n: int, size: int, radius: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    angles = [2 * math.pi * i / n for i in range(n)]
    viewmats = torch.stack([look_at([radius * math.cos(a), radius * math.sin(a),
                                     0.3 * radius * (-1) ** i]) for i, a in enumerate(angles)])
    ks = torch.tensor([[size * 1.0, 0, size / 2], [0, size * 1.0, size / 2], [0, 0, 1]])
    return viewmats, ks.expand(n, 3, 3).clone()


def make_batch(images, viewmats, ks, idx, size, alphas=None) -> dict:
    idx = torch.as_tensor(idx).reshape(-1)
    batch = dict(image=images[idx], viewmats=viewmats[idx], Ks=ks[idx], width=size,
                 height=size, index=idx, name=[f'v{int(i)}' for i in idx])
    if alphas is not None:
        batch['alpha'] = alphas[idx]
    return batch


def synthetic_scene(n_gt: int = 40, n_cams: int = 5, size: int = 32, seed: int = 0):
    """Target images rendered by the rasterizer from a random ground-truth Gaussian set."""
    gen = torch.Generator().manual_seed(seed)
    gt = GaussianSplatting(sh_degree=0)
    gt.init_from_points(torch.randn(n_gt, 3, generator=gen) * 0.45,
                        torch.rand(n_gt, 3, generator=gen))
    with torch.no_grad():
        gt.params['scales'].add_(0.3)
        gt.params['opacities'].fill_(2.0)
    gt.eval()
    renderer = RENDERERS.build(dict(type='GaussianSplatRenderer', render_mode='RGB'))
    viewmats, ks = ring_cameras(n_cams, size)
    with torch.no_grad():
        batch = dict(viewmats=viewmats, Ks=ks, width=size, height=size)
        out = renderer(gt(batch), batch)
    return out['rgb'].clamp(0, 1), out['alpha'], viewmats, ks


# ---------------------------------------------------------------------- initialisation
def test_knn_exact_and_morton_approximation() -> None:
    pts = torch.rand(600, 3)
    brute = (pts.double()[:, None] - pts.double()[None]).pow(2).sum(-1)  # float64 reference
    brute.fill_diagonal_(float('inf'))
    expected = brute.topk(3, largest=False).values.mean(1).float()
    assert torch.allclose(knn_mean_sq_dist(pts), expected, rtol=1e-6, atol=1e-9)
    approx = knn_mean_sq_dist(pts, exact_max=0)  # force the Morton block search
    assert (approx >= expected * (1 - 1e-6)).all()  # never closer than the true neighbours
    ratio = approx / expected
    assert float(ratio.median()) < 1.05


def test_knn_is_accurate_far_from_the_origin() -> None:
    # COLMAP scenes are often offset from the origin: distances must not come from
    # |a|^2 + |b|^2 - 2ab, which loses small distances to cancellation there.
    pts = torch.rand(500, 3, generator=torch.Generator().manual_seed(0)) * 100 + 1000
    brute = (pts.double()[:, None] - pts.double()[None]).pow(2).sum(-1)
    brute.fill_diagonal_(float('inf'))
    expected = brute.topk(3, largest=False).values.mean(1)
    got = knn_mean_sq_dist(pts).double()
    assert float(((got - expected).abs() / expected).max()) < 1e-5


def test_setup_from_points_and_random() -> None:
    pts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [5, 5, 5]])
    rgb = torch.rand(5, 3)
    scene = SimpleNamespace(points=pts, points_rgb=rgb, scene_extent=2.0,
                            background=torch.ones(3))
    model = MODELS.build(dict(type='GaussianSplatting', init_scale_jitter=0.0))
    model.setup(scene)
    assert model.num_gaussians == 5
    assert model.params['shN'].shape == (5, 15, 3)
    assert torch.allclose(torch.sigmoid(model.params['opacities']), torch.full((5,), 0.1))
    # Origin: neighbours at distance 1, 1, 1.
    assert torch.allclose(model.params['scales'][0], torch.zeros(3), atol=1e-6)
    assert torch.allclose(model.params['sh0'][:, 0] * SH_C0 + 0.5, rgb, atol=1e-6)
    assert torch.equal(model.data_background, torch.ones(3))

    model = GaussianSplatting(num_random=500, random_extent=1.0)
    model.setup(SimpleNamespace(points=None, points_rgb=None, scene_extent=2.0,
                                scene_center=torch.tensor([10.0, 0, 0])))
    assert model.num_gaussians == 500
    means = model.params['means'].detach()
    assert (means[:, 0] > 8).all() and (means[:, 0] < 12).all() and (means.abs()[:, 1:] <= 2).all()
    assert torch.isfinite(model.params['scales']).all()


def _quat_grad(model: GaussianSplatting, viewmats: torch.Tensor, ks: torch.Tensor,
               target: torch.Tensor) -> torch.Tensor:
    """d L1(render, target) / d quats, rendered in float64 by the torch reference."""
    p = {k: v.detach().double().requires_grad_(k == 'quats') for k, v in model.params.items()}
    img, _, _ = rasterization(p['means'], p['quats'], p['scales'].exp(),
                              torch.sigmoid(p['opacities']), (p['sh0'], p['shN']),
                              viewmats.double(), ks.double(), 32, 32, sh_degree=0,
                              backend='torch')
    (img - target).abs().sum().backward()
    return p['quats'].grad


def test_init_scale_jitter_gives_rotations_a_gradient() -> None:
    """The k-NN start is isotropic, a saddle where no rotation gets a gradient; the default
    per-axis log-scale jitter (1%) gives every visible Gaussian one from the first step."""
    gen = torch.Generator().manual_seed(3)
    pts, rgb = torch.randn(40, 3, generator=gen) * 0.4, torch.rand(40, 3, generator=gen)
    viewmats, ks = ring_cameras(2, 32)
    target = torch.rand(2, 32, 32, 3, generator=gen, dtype=torch.float64)
    knn_log = 0.5 * torch.log(knn_mean_sq_dist(pts, 3).clamp_min(1e-7))

    plain = GaussianSplatting(sh_degree=0, init_scale_jitter=0.0)
    plain.init_from_points(pts, rgb)
    iso = plain.params['scales'].detach()
    assert torch.equal(iso, iso[:, :1].expand(40, 3))   # exactly isotropic
    assert torch.allclose(iso[:, 0], knn_log, atol=1e-6)
    torch.manual_seed(0)
    jittered = GaussianSplatting(sh_degree=0)
    jittered.init_from_points(pts, rgb)
    offset = jittered.params['scales'].detach() - knn_log[:, None]
    assert 0.007 < float(offset.std()) < 0.013 and float(offset.mean().abs()) < 0.004
    with pytest.raises(ValueError, match='init_scale_jitter'):
        GaussianSplatting(init_scale_jitter=-0.1)

    g_plain = _quat_grad(plain, viewmats, ks, target).norm(dim=-1)
    g_jit = _quat_grad(jittered, viewmats, ks, target).norm(dim=-1)
    seen = g_jit > 0
    assert int(seen.sum()) >= 20
    assert float(g_plain.max()) < 1e-12 * float(g_jit.max())
    # on the order of the other gradients: a real signal, not round-off
    assert float(g_jit[seen].median()) > 1e-4


def test_sh_degree_follows_step_and_forward() -> None:
    model = GaussianSplatting(sh_degree=3, sh_degree_interval=100)
    model.init_from_points(torch.rand(10, 3), torch.rand(10, 3))
    viewmats, ks = ring_cameras(2, 16)
    batch = dict(viewmats=viewmats, Ks=ks, width=16, height=16)
    assert model(batch)['sh_degree'] == 0
    model.set_step(250)
    assert model(batch)['sh_degree'] == 2
    assert model(dict(batch, step=5000))['sh_degree'] == 3
    out = model(batch)
    sh0, sh_rest = out['colors']  # the two parameters, not concatenated
    assert sh0 is model.params['sh0'] and sh_rest is model.params['shN']
    assert sh_rest.shape == (10, 15, 3) and out['backgrounds'].shape == (2, 3)
    assert torch.allclose(out['opacities'], torch.full((10,), 0.1))
    # The step is part of the state: resume gives the same degree.
    model2 = GaussianSplatting(sh_degree=3, sh_degree_interval=100)
    model2.load_state_dict(model.state_dict())
    assert model2.active_sh_degree() == 2


@pytest.mark.parametrize('background, expected', [
    ('black', [0.0, 0, 0]), ('white', [1.0, 1, 1]), ([0.2, 0.4, 0.6], [0.2, 0.4, 0.6])])
def test_fixed_backgrounds(background, expected) -> None:
    model = GaussianSplatting(background=background)
    bg = model._backgrounds(3, torch.device('cpu'))
    assert torch.allclose(bg, torch.tensor(expected).expand(3, 3))
    with pytest.raises(ValueError):
        GaussianSplatting(background='grey')


def test_random_background_recomposites_ground_truth() -> None:
    model = GaussianSplatting(background='random')
    model.data_background.fill_(1.0)  # dataset composited on white
    fg = torch.rand(2, 4, 4, 3)
    alpha = torch.rand(2, 4, 4, 1)
    image = fg * alpha + 1.0 * (1 - alpha)
    bg = model._backgrounds(2, torch.device('cpu'))
    assert not torch.allclose(bg[0], bg[1])
    target = model.target_image({'backgrounds': bg}, {'image': image, 'alpha': alpha})
    assert torch.allclose(target, fg * alpha + bg[:, None, None] * (1 - alpha), atol=1e-6)
    model.eval()
    assert torch.equal(model._backgrounds(2, torch.device('cpu')), torch.zeros(2, 3))


def test_state_dict_round_trip_with_different_n() -> None:
    src = GaussianSplatting(sh_degree=2)
    src.init_from_points(torch.rand(37, 3), torch.rand(37, 3))
    dst = GaussianSplatting(sh_degree=2)
    dst.init_from_points(torch.rand(5, 3), torch.rand(5, 3))
    dst.load_state_dict(src.state_dict())
    assert dst.num_gaussians == 37
    for name in src.params.keys():
        assert torch.equal(src.params[name], dst.params[name])
    empty = GaussianSplatting(sh_degree=2)  # no scene at all (loading a checkpoint)
    assert empty.num_gaussians == 0
    empty.load_state_dict(src.state_dict())
    assert empty.num_gaussians == 37 and empty.params['means'].requires_grad


def test_loss_and_metrics() -> None:
    images, alphas, viewmats, ks = synthetic_scene(n_gt=10, n_cams=2, size=24)
    model = GaussianSplatting(sh_degree=0)
    model.init_from_points(torch.randn(10, 3) * 0.4, torch.rand(10, 3))
    renderer = RENDERERS.build(dict(type='GaussianSplatRenderer'))
    batch = make_batch(images, viewmats, ks, [0, 1], 24)
    rr = renderer(model(batch), batch)
    assert rr['rgb'].shape == (2, 24, 24, 3)
    losses = model.get_loss_dict(rr, batch)
    l1 = (rr['rgb'] - images).abs().mean()
    assert torch.allclose(losses['l1'], l1)
    assert torch.allclose(losses['loss'], 0.8 * l1 + 0.2 * losses['dssim'])
    metrics = model.get_metric_dict(rr, batch)
    assert metrics['psnr'].shape == (2,) and metrics['ssim'].shape == (2,)
    perfect = model.get_metric_dict({'rgb': images[:2]}, batch)
    assert (perfect['ssim'] > 0.9999).all() and (perfect['psnr'] > 100).all()


def test_renderer_modes_and_state() -> None:
    model = GaussianSplatting(sh_degree=0, background='white')
    model.init_from_points(torch.randn(8, 3) * 0.3, torch.rand(8, 3))
    viewmats, ks = ring_cameras(2, 16)
    batch = dict(viewmats=viewmats, Ks=ks, width=16, height=16)
    renderer = RENDERERS.build(dict(type='GaussianSplatRenderer', render_mode='RGB'))
    out = renderer(model(batch), batch)
    assert set(out) >= {'rgb', 'alpha', 'meta'} and 'depth' not in out
    # Empty pixels show the background.
    empty = out['alpha'][..., 0] < 1e-6
    assert empty.any() and torch.allclose(out['rgb'][empty], torch.ones(3))
    assert out['meta']['means2d'].shape == (2, 8, 2) and out['meta']['radii'].shape == (2, 8)
    depth_only = renderer(model(batch), batch, render_mode='ED')
    assert 'rgb' not in depth_only and depth_only['depth'].shape == (2, 16, 16, 1)
    renderer.load_state_dict(renderer.state_dict())


def test_training_renders_skip_depth_unless_a_loss_reads_it() -> None:
    model = GaussianSplatting(sh_degree=0)
    model.init_from_points(torch.randn(8, 3) * 0.3, torch.rand(8, 3))
    viewmats, ks = ring_cameras(2, 16)
    batch = dict(viewmats=viewmats, Ks=ks, width=16, height=16)
    renderer = RENDERERS.build(dict(type='GaussianSplatRenderer'))  # 'RGB+ED'
    train = renderer(model.train()(batch), batch)
    evaluation = renderer(model.eval()(batch), batch)
    assert 'depth' not in train and evaluation['depth'].shape == (2, 16, 16, 1)
    # same colours: the depth channel only rides along
    assert torch.allclose(train['rgb'], evaluation['rgb'], atol=1e-6)
    # the renderer's own mode when a config section's loss reads the depth, or when asked
    model.scene_modules['probe'] = type('Probe', (SceneModule,), {'needs_training_depth': True})()
    assert renderer(model.train()(batch), batch)['depth'].shape == (2, 16, 16, 1)
    del model.scene_modules['probe']
    model.train_render_mode = None
    assert 'depth' in renderer(model(batch), batch)
    model.train_render_mode = 'RGB+D'
    assert renderer(model(batch), batch)['depth'].shape == (2, 16, 16, 1)
    # an explicit mode in the call wins
    assert 'rgb' not in renderer(model(batch), batch, render_mode='ED')


# ---------------------------------------------------------------------- training
def _assert_optimizer_aligned(model, optimizer) -> None:
    for group in optimizer.param_groups:
        param = group['params'][0]
        assert param is model.params[group['name']]
        state = optimizer.state[param]
        assert state['exp_avg'].shape == param.shape
        assert state['exp_avg_sq'].shape == param.shape


def _mean_loss(model, renderer, images, viewmats, ks, size) -> float:
    model.eval()
    with torch.no_grad():
        batch = make_batch(images, viewmats, ks, range(len(images)), size)
        rr = renderer(model(batch), batch)
        loss = float(model.get_loss_dict(rr, batch)['loss'])
    model.train()
    return loss


def test_training_reduces_loss_and_densifies() -> None:
    """The trainer step contract on a synthetic scene: loss falls, Gaussians are both
    added and pruned, Adam rows always match parameter rows."""
    start = time.time()
    size, n_cams, steps = 32, 5, 200
    images, _, viewmats, ks = synthetic_scene(n_gt=40, n_cams=n_cams, size=size)
    scene = SimpleNamespace(points=torch.randn(30, 3) * 0.5, points_rgb=torch.rand(30, 3),
                            scene_extent=3.3, background=torch.zeros(3))
    model = MODELS.build(dict(type='GaussianSplatting', sh_degree=1, sh_degree_interval=50))
    model.setup(scene)
    renderer = RENDERERS.build(dict(type='GaussianSplatRenderer', render_mode='RGB+ED'))
    optimizer = OPTIMIZERS.build(
        dict(type='GaussianOptimizer', strategy=dict(
            # 3DGS intervals shrunk ~100x; the reset at step 30 makes the refinement at 40
            # prune the Gaussians that stayed transparent.
            type='DefaultStrategy', refine_start=10, refine_every=10, reset_every=30,
            refine_stop=60, grow_grad2d=0.006, grow_scale3d=0.01, prune_scale2d=0.5,
            cap_max=400)),
        default_args=dict(model=model, scene_extent=scene.scene_extent))
    schedulers = [PARAM_SCHEDULERS.build(dict(type='ExponentialDecayLR', groups=['means'],
                                              max_steps=steps),
                                         default_args=dict(optimizer=optimizer))]
    loss_before = _mean_loss(model, renderer, images, viewmats, ks, size)
    grown = pruned = 0
    gen = torch.Generator().manual_seed(0)
    for step in range(steps):
        batch = make_batch(images, viewmats, ks, torch.randint(n_cams, (1,), generator=gen),
                           size)
        render_inputs = model(batch)
        render_results = renderer(render_inputs, batch)
        loss_dict = model.get_loss_dict(render_results, batch)
        loss_dict['loss'].backward()
        stats = optimizer.update_model(
            **model.get_optimizer_dict(loss_dict, render_results, batch, step))
        for sched in schedulers:
            sched.step()
        grown += stats.get('n_dupli', 0) + stats.get('n_split', 0)
        pruned += stats.get('n_prune', 0)
        _assert_optimizer_aligned(model, optimizer)
        assert stats['num_gaussians'] == model.num_gaussians <= 400
    loss_after = _mean_loss(model, renderer, images, viewmats, ks, size)
    print(f'loss {loss_before:.4f} -> {loss_after:.4f}, grown {grown}, pruned {pruned}, '
          f'N {model.num_gaussians}, {time.time() - start:.1f}s')
    assert grown > 0 and pruned > 0
    assert loss_after < 0.75 * loss_before
    assert model.active_sh_degree() == 1  # sh_degree_interval=50
