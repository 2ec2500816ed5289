"""Radiance fields through the generic trainer: training, evaluation, checkpoints,
bit-exact resume (occupancy grid included) and the clear-error paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nerfreg.engine import DefaultTrainer
from nerfreg.utils.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _cfg(tmp_path: Path, work: str, **overrides):
    cfg = load_config(REPO / 'configs' / 'nerf' / 'demo.py')
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / work), 'device': 'cpu', 'custom_hooks': [],
        'data.data_root': str(tmp_path / 'scene'), 'data.image_size': 24, 'data.n_train': 6,
        'data.n_val': 2, 'data.n_test': 2, 'data.rays_per_step': 128,
        'model.field': dict(n_levels=4, log2_table_size=10, base_resolution=4,
                            finest_resolution=48, hidden=16, geo_features=7),
        'model.grid': dict(resolution=16, update_every=2, warmup_steps=4),
        'model.render_step_size': 0.05,
        'train_cfg.max_steps': 8, 'train_cfg.val_interval': 0,
        'default_hooks.checkpoint.interval': 4, 'default_hooks.logger.interval': 2,
        **overrides})
    return cfg


@pytest.mark.slow
def test_resume_is_bit_exact_including_occupancy_grid(tmp_path):
    full = DefaultTrainer.from_cfg(_cfg(tmp_path, 'full'))
    full.train()
    DefaultTrainer.from_cfg(_cfg(tmp_path, 'part', **{'train_cfg.max_steps': 5})).train()
    resumed = DefaultTrainer.from_cfg(_cfg(tmp_path, 'part', resume=True))
    resumed.train()
    assert resumed.global_step == 8
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert set(a) == set(b) and 'grid.binary' in a and 'grid.values' in a
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert float(a['grid.values'].abs().sum()) > 0  # the grid was really updated
    assert resumed.data.state_dict() == full.data.state_dict()


@pytest.mark.slow
def test_train_validate_test_and_clear_errors(tmp_path, capsys):
    trainer = DefaultTrainer.from_cfg(_cfg(tmp_path, 'w', **{'train_cfg.val_interval': 8}))
    before = trainer.model.field.tables.detach().clone()
    trainer.train()
    assert not torch.equal(before, trainer.model.field.tables)
    assert trainer.val_metrics['psnr'] > 5
    metrics = trainer.test()
    assert set(metrics) >= {'psnr', 'ssim'}
    ckpt = tmp_path / 'w' / 'iter_8.pth'
    assert ckpt.is_file()

    # a field is not splats: exporting says so
    from nerfreg.apis import export
    with pytest.raises(TypeError, match='radiance field'):
        export(trainer.model, tmp_path / 'x.ply')
    assert not (tmp_path / 'x.ply').exists()

    # the command-line tools on the field checkpoint
    from nerfreg.cli import export, render
    from nerfreg.cli import test as test_cli
    config = tmp_path / 'w' / 'demo.py'  # the config the trainer dumped
    assert export.main([str(config), str(ckpt), '--out', str(tmp_path / 'x.ply')]) == 1
    assert 'radiance field' in capsys.readouterr().err
    video = tmp_path / 'v.mp4'
    assert render.main([str(config), str(ckpt), '--out', str(video), '--frames', '2',
                        '--device', 'cpu']) == 0
    assert video.stat().st_size > 0
    assert test_cli.main([str(config), str(ckpt), '--work-dir', str(tmp_path / 't'),
                          '--device', 'cpu']) == 0
    assert (tmp_path / 't' / 'test' / 'metrics.json').is_file()

    # field checkpoint into a splatting model, and the reverse
    from nerfreg.models import GaussianSplatting
    with pytest.raises(ValueError, match='radiance field'):
        GaussianSplatting().load_state_dict(trainer.model.state_dict())
    with pytest.raises(ValueError, match='Gaussian splats'):
        trainer.model.load_state_dict(GaussianSplatting().state_dict())


def test_cameras_outside_the_box_are_refused(tmp_path):
    cfg = _cfg(tmp_path, 'bad', **{'model.aabb': [20.0, 20.0, 20.0, 21.0, 21.0, 21.0]})
    with pytest.raises(ValueError, match='model.aabb'):
        DefaultTrainer.from_cfg(cfg)


def test_ray_pipeline_sampling_is_resumable(tmp_path):
    from nerfreg.datasets import RayPipeline
    kw = dict(dataset_type='ProceduralSceneDataset', data_root=str(tmp_path / 'scene'),
              image_size=24, n_train=6, n_val=2, n_test=2, rays_per_step=64, seed=3)
    a, b = RayPipeline(**kw), RayPipeline(**kw)
    for _ in range(3):
        a.next_train_batch()
    b.load_state_dict(a.state_dict())
    x, y = a.next_train_batch(), b.next_train_batch()
    assert torch.equal(x['rays_o'], y['rays_o']) and torch.equal(x['image'], y['image'])
    # the colours are those of the sampled pixels
    img = a.dataset.train.images[int(x['cam_index'][0])]
    px, py = (int(v) for v in x['pixel'][0])
    assert torch.equal((x['image'][0] * 255).round().byte(), img[py, px])
    views = list(a.iter_split('val'))
    assert len(views) == 2 and views[0]['image'].shape == (1, 24, 24, 3)


@pytest.mark.parametrize('name', ['blender', 'ngp', 'colmap', 'demo'])
def test_field_configs_build_their_components(name):
    from nerfreg.registry import MODELS, OPTIMIZERS, RENDERERS
    cfg = load_config(REPO / 'configs' / 'nerf' / f'{name}.py')
    assert cfg.data.type == 'RayPipeline' and cfg.data.rays_per_step > 0
    model = MODELS.build(dict(cfg.model))
    RENDERERS.build(dict(cfg.renderer))
    opt = OPTIMIZERS.build(dict(cfg.optimizer), default_args=dict(model=model))
    assert [g['name'] for g in opt.param_groups] == ['encoding', 'mlp']
    assert model.bounds == ('aabb' if name in ('blender', 'demo') else 'contract')


@pytest.mark.slow
def test_ngp_config_trains_on_fox(tmp_path):
    from tests.conftest import shared_scene
    root = shared_scene('fox')
    cfg = load_config(REPO / 'configs' / 'nerf' / 'ngp.py')
    cfg.merge_from_dict({'work_dir': str(tmp_path / 'w'), 'device': 'cpu', 'custom_hooks': [],
                         'data.data_root': str(root), 'data.downscale': 16,
                         'data.rays_per_step': 256, 'train_cfg.max_steps': 3,
                         'train_cfg.val_interval': 0, 'renderer.train_sample_budget': 8192})
    trainer = DefaultTrainer.from_cfg(cfg)
    assert float(trainer.model.radius) > 0
    trainer.train()
    assert trainer.global_step == 3


def test_viewer_renders_a_field_like_its_own_renderer(tmp_path):
    """The viewer knows no method: a field trained a few steps renders through its path
    as the trainer's renderer renders the same test camera."""
    from nerfreg.metrics.functional import psnr
    from nerfreg.viewer.camera import cameras_to_poses
    from nerfreg.viewer.render import ViewSettings, render_view
    trainer = DefaultTrainer.from_cfg(_cfg(tmp_path, 'v'))
    trainer.train()
    model, renderer = trainer.model.eval(), trainer.renderer
    batch = next(iter(trainer.data.iter_split('test')))
    with torch.no_grad():
        direct = renderer(model(batch), batch)['rgb'][0].clamp(0, 1)
    cams = batch['camera']
    pose = cameras_to_poses(cams)[0]
    w, h = int(cams.width[0]), int(cams.height[0])
    frame = render_view(model, renderer, pose, w, h)
    shown = torch.from_numpy(frame).float() / 255
    assert frame.shape == (h, w, 3)
    assert float(psnr(shown[None], direct[None].cpu())) > 35
    depth = render_view(model, renderer, pose, w, h, ViewSettings(mode='depth'))
    assert depth.shape == (h, w, 3) and depth.std() > 0


def test_field_optimizer_fused_adam_matches_the_loop():
    """The fused Adam (default on the CPU) takes the same steps as torch's per-tensor loop,
    per-group learning rates and weight decay included, and a reloaded state keeps the
    run's own choice of kernel."""
    from nerfreg.models.field import HashGridField
    from nerfreg.models.nerf_optimizer import FieldOptimizer

    torch.manual_seed(0)
    a = HashGridField(n_levels=2, log2_table_size=8, base_resolution=4, finest_resolution=8,
                      hidden=8, geo_features=3)
    b = HashGridField(n_levels=2, log2_table_size=8, base_resolution=4, finest_resolution=8,
                      hidden=8, geo_features=3)
    b.load_state_dict(a.state_dict())
    start = a.tables.detach().clone()
    fused = FieldOptimizer(a, lr=1e-2, mlp_lr=3e-3, weight_decay=1e-2)
    loop = FieldOptimizer(b, lr=1e-2, mlp_lr=3e-3, weight_decay=1e-2, fused=False)
    assert fused.fused and not loop.fused
    x, d = torch.rand(64, 3), torch.nn.functional.normalize(torch.randn(64, 3), dim=1)
    for _ in range(4):
        for model, opt in ((a, fused), (b, loop)):
            sigma, rgb = model(x, d)
            (sigma.mean() + rgb.square().mean()).backward()
            opt.update_model()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa, pb, rtol=1e-5, atol=1e-7), name
    assert not torch.allclose(a.tables, start, atol=1e-4)  # the steps moved the tables
    loop.load_state_dict(fused.state_dict())
    assert all(not g['fused'] for g in loop.param_groups)
    with pytest.raises(ValueError, match='fused'):
        FieldOptimizer(a, fused='yes')
