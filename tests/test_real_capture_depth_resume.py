"""Sparse depth supervision (numeric gradients, sampling convention) and every real-capture
switch on at once: bit-exact resume, checkpoints, PLY export and tools/test.py."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from test_real_capture_masks import _cup_scene

from nerfreg.engine import DefaultTrainer
from nerfreg.models.depth_loss import SparseDepthLoss, project, sample_image
from nerfreg.utils.config import load_config

REPO = Path(__file__).resolve().parents[1]


def test_sampling_hits_pixel_centres_and_interpolates():
    img = torch.arange(12, dtype=torch.float64).reshape(3, 4, 1)
    centres = torch.tensor([[0.5, 0.5], [3.5, 2.5], [1.5, 1.5]], dtype=torch.float64)
    assert torch.allclose(sample_image(img, centres)[:, 0],
                          torch.tensor([0.0, 11.0, 5.0], dtype=torch.float64))
    mid = torch.tensor([[1.0, 1.5]], dtype=torch.float64)  # halfway between (0,1) and (1,1)
    assert torch.allclose(sample_image(img, mid)[:, 0], torch.tensor([4.5], dtype=torch.float64))


def test_depth_loss_gradients_match_finite_differences():
    torch.manual_seed(0)
    module = SparseDepthLoss(weight=1.0)
    points = torch.rand(30, 3, dtype=torch.float64) * 2 - 1
    points[:, 2] += 4.0
    K = torch.tensor([[20.0, 0, 12], [0, 20.0, 10], [0, 0, 1]], dtype=torch.float64)
    viewmat = torch.eye(4, dtype=torch.float64)
    alpha = torch.ones(20, 24, 1, dtype=torch.float64)
    depth = (3.0 + torch.rand(20, 24, 1, dtype=torch.float64)).requires_grad_()
    trans = torch.zeros(3, dtype=torch.float64, requires_grad=True)

    def loss(depth, trans):
        vm = viewmat.clone()
        vm[:3, 3] = trans
        return module.view_loss(depth, alpha, points, vm, K)
    assert torch.autograd.gradcheck(loss, (depth, trans), eps=1e-6, atol=1e-6)
    # the loss is zero when the render holds the point's depth
    one = points[:1]
    _, z1 = project(one, viewmat, K)
    flat = torch.full((20, 24, 1), float(z1[0]), dtype=torch.float64)
    assert float(module.view_loss(flat, alpha, one, viewmat, K)) < 1e-12


def test_depth_loss_refuses_a_scene_without_observations():
    scene = SimpleNamespace(train=SimpleNamespace(names=['a']), scene_extent=1.0)
    with pytest.raises(ValueError, match='depth_loss needs the SfM points'):
        SparseDepthLoss().setup(scene)


def _masked_cup(cup_root: Path, dest: Path) -> Path:
    scene, keep = _cup_scene(cup_root, dest, n=8)
    (scene / 'masks').mkdir()
    for im in keep:
        mask = np.full((600, 800), 255, np.uint8)
        mask[:120, :160] = 0
        cv2.imwrite(str(scene / 'masks' / (Path(im.name).stem + '.png')), mask)
    return scene


ALL_ON = {'camera_opt.enabled': True, 'appearance.enabled': True, 'depth_loss.enabled': True,
          'data.masks_dir': 'masks'}


def _cfg(scene: Path, work: Path, steps: int, resume: bool = False, hooks: bool = False):
    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / 'colmap_short.py')
    cfg.merge_from_dict({
        'work_dir': str(work), 'resume': resume, 'device': 'cpu', 'seed': 5,
        'data.data_root': str(scene), 'data.downscale': 8, 'data.holdout_every': 4,
        'data.val_every': 0, 'train_cfg.max_steps': steps, 'train_cfg.val_interval': 0,
        'optimizer.strategy.refine_start': 2, 'optimizer.strategy.refine_every': 3,
        'model.sh_degree_interval': 3, 'default_hooks.checkpoint.interval': 1000, **ALL_ON})
    if not hooks:
        cfg.custom_hooks = []
    return cfg


@pytest.mark.slow
def test_every_switch_on_resumes_bit_exactly_and_exports(cup_root, tmp_path):
    scene = _masked_cup(cup_root, tmp_path / 'scene')
    full = DefaultTrainer.from_cfg(_cfg(scene, tmp_path / 'full', 8, hooks=True))
    assert set(full.model.scene_modules) == {'camera_opt', 'appearance', 'depth_loss'}
    losses, step = [], full.train_step
    full.train_step = lambda batch: losses.append(step(batch)) or losses[-1]
    full.train()
    assert all('depth_loss' in out for out in losses)
    assert (tmp_path / 'full' / 'point_cloud.ply').is_file()  # FinalExportHook
    part = tmp_path / 'part'
    DefaultTrainer.from_cfg(_cfg(scene, part, 5)).train()
    resumed = DefaultTrainer.from_cfg(_cfg(scene, part, 8, resume=True))
    resumed.train()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert set(a) == set(b)
    assert 'scene_modules.camera_opt.delta' in a and 'scene_modules.appearance.embedding' in a
    for key in a:
        assert torch.equal(a[key], b[key]), key
    sa, sb = full.optimizer.state_dict()['adam'], resumed.optimizer.state_dict()['adam']
    for k in sa['state']:
        for name in ('exp_avg', 'exp_avg_sq'):
            assert torch.equal(sa['state'][k][name], sb['state'][k][name]), (k, name)

    # tools/test.py on the checkpoint, with the config the run dumped
    full.save_model(tmp_path / 'full' / 'final.pth')
    from nerfreg.cli import test as test_cli
    out = tmp_path / 'test_out'
    code = test_cli.main([str(tmp_path / 'full' / 'colmap_short.py'),
                          str(tmp_path / 'full' / 'final.pth'), '--work-dir', str(out),
                          '--out-dir', str(out), '--no-images'])
    assert code == 0
    assert 'psnr' in json.loads((out / 'metrics.json').read_text()).__repr__()


@pytest.mark.slow
def test_fields_resume_bit_exactly_with_camera_opt_and_appearance(tmp_path):
    def cfg_for(work, steps, resume=False):
        cfg = load_config(REPO / 'configs' / 'nerf' / 'demo.py')
        cfg.merge_from_dict({
            'work_dir': str(tmp_path / work), 'resume': resume, 'device': 'cpu',
            'custom_hooks': [], 'data.data_root': str(tmp_path / 'scene'),
            'data.image_size': 24, 'data.n_train': 5, 'data.n_val': 1, 'data.n_test': 2,
            'data.rays_per_step': 128,
            'model.field': dict(n_levels=4, log2_table_size=10, base_resolution=4,
                                finest_resolution=48, hidden=16, geo_features=7),
            'model.grid': dict(resolution=16, update_every=2, warmup_steps=4),
            'model.render_step_size': 0.05, 'train_cfg.max_steps': steps,
            'train_cfg.val_interval': 0, 'default_hooks.checkpoint.interval': 1000,
            'camera_opt.enabled': True, 'appearance.enabled': True})
        return cfg
    full = DefaultTrainer.from_cfg(cfg_for('full', 8))
    full.train()
    DefaultTrainer.from_cfg(cfg_for('part', 5)).train()
    resumed = DefaultTrainer.from_cfg(cfg_for('part', 8, resume=True))
    resumed.train()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert 'scene_modules.camera_opt.delta' in a
    for key in a:
        assert torch.equal(a[key], b[key]), key
