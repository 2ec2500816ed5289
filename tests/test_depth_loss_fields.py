"""Sparse depth supervision for fields: a ray-batch model renders the extra rays
``SparseDepthLoss`` asks for (through observed SfM points of the step's images) after its
batch, and the loss on them equals the formula applied to those rays rendered alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nerfreg.engine import DefaultTrainer
from nerfreg.models.depth_loss import project
from nerfreg.models.nerf import _extra_slots
from nerfreg.utils.config import load_config

REPO = Path(__file__).resolve().parents[1]
TINY_FIELD = {
    'model.field': dict(n_levels=4, log2_table_size=10, base_resolution=4, finest_resolution=48,
                        hidden=16, geo_features=7),
    'model.grid': dict(resolution=16, update_every=2, warmup_steps=4),
    'model.render_step_size': 0.05, 'model.max_samples': 64,
    'renderer.train_sample_budget': None}


def _trainer_with_depth(tmp_path: Path, **depth) -> DefaultTrainer:
    """A tiny field on the procedural scene, whose surface points stand in for the SfM
    points each training image observed; ``depth_loss`` handed to the model afterwards."""
    cfg = load_config(REPO / 'configs' / 'nerf' / 'demo.py')
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / 'run'), 'device': 'cpu', 'custom_hooks': [],
        'data.data_root': str(tmp_path / 'scene'), 'data.image_size': 24, 'data.n_train': 4,
        'data.n_val': 1, 'data.n_test': 1, 'data.num_points': 400, 'data.rays_per_step': 128,
        'train_cfg.max_steps': 2, 'train_cfg.val_interval': 0,
        'default_hooks.checkpoint.interval': 1000, **TINY_FIELD})
    trainer = DefaultTrainer.from_cfg(cfg)
    scene = trainer.scene
    n = len(scene.train)
    scene.observed_points = {name: scene.points[i::n] for i, name in enumerate(scene.train.names)}
    trainer.model.take_config_sections(
        {'depth_loss': dict(type='SparseDepthLoss', enabled=True, **depth)}, scene)
    return trainer


def test_extra_rays_go_through_observed_points_of_the_steps_images(tmp_path):
    trainer = _trainer_with_depth(tmp_path, rays_per_step=64)
    model, scene = trainer.model, trainer.scene
    batch = trainer.data.next_train_batch()
    batch['cam_index'] = batch['cam_index'].clamp_max(1)  # the step sees images 0 and 1 only
    rays = model.scene_modules['depth_loss'].extra_rays(batch, 3)
    assert 0 < len(rays['rays_o']) <= 64 and set(rays['cam_index'].tolist()) <= {0, 1}
    hit = rays['rays_o'] + rays['depth'][:, None] * rays['rays_d']
    cams = scene.train.cameras
    for i in (0, 1):
        sel = rays['cam_index'] == i
        observed = scene.observed_points[scene.train.names[i]]
        assert torch.cdist(hit[sel], observed).min(1).values.max() < 1e-3  # float32, ~4 away
        torch.testing.assert_close(rays['rays_o'][sel], cams.centers()[i].expand(int(sel.sum()), 3))
        uv, z = project(hit[sel], cams.viewmats()[i], cams.Ks()[i])
        assert (z > 0).all() and (uv >= 0).all() and (uv < 24).all()
    again = model.scene_modules['depth_loss'].extra_rays(batch, 3)
    assert torch.equal(again['rays_d'], rays['rays_d'])  # same step, same rays (exact resume)
    other = model.scene_modules['depth_loss'].extra_rays(batch, 4)
    assert not torch.equal(other['rays_d'], rays['rays_d'])


def test_field_renders_the_extra_rays_with_the_batch_and_the_loss_matches(tmp_path):
    trainer = _trainer_with_depth(tmp_path, rays_per_step=96, min_alpha=0.0, weight=0.5)
    model, renderer = trainer.model, trainer.renderer
    model.train()
    batch = trainer.data.next_train_batch()
    inputs = model(batch)
    extra = batch['extra_rays']['depth_loss']
    r, k = len(batch['rays_o']), len(extra['rays_o'])
    assert k > 0 and inputs['rays_o'].shape == (r + k, 3)
    slots = _extra_slots(r, k, torch.device('cpu'))  # extra rays spread among the batch's
    assert int(slots.sum()) == k and slots[:r // 2].any() and slots[r // 2:].any()
    torch.testing.assert_close(inputs['rays_o'][~slots], batch['rays_o'])
    inputs['jitter'] = False  # deterministic marching, to compare with separate renders
    results = renderer(inputs, batch)
    losses = model.get_loss_dict(results, batch)
    assert 'depth_loss' in losses
    # reference: the extra rays and the batch rays rendered on their own
    with torch.no_grad():
        alone = renderer.render_rays(inputs, extra['rays_o'], extra['rays_d'],
                                     inputs['backgrounds'][slots])
        own = renderer.render_rays(inputs, batch['rays_o'], batch['rays_d'],
                                   inputs['backgrounds'][~slots])
    torch.testing.assert_close(results['rgb'][~slots].detach(), own['rgb'], atol=1e-6,
                               rtol=1e-5)
    opaque = alone['alpha'][:, 0] > 0
    assert opaque.sum() > 10
    ext = float(trainer.scene.scene_extent)
    expected = 0.5 * (ext / alone['depth'][opaque, 0].clamp_min(1e-6)
                      - ext / extra['depth'][opaque]).abs().mean()
    torch.testing.assert_close(losses['depth_loss'].detach(), expected, atol=1e-6, rtol=1e-4)
    target = model.target_image({**own, 'backgrounds': inputs['backgrounds'][~slots]}, batch)
    torch.testing.assert_close(losses['mse'], ((own['rgb'] - target) ** 2).mean(),
                               atol=1e-6, rtol=1e-4)  # the batch's colour loss is unchanged
    # the depth term reaches the field
    losses['depth_loss'].backward()
    grads = [p.grad for p in model.field.parameters() if p.grad is not None]
    assert grads and max(float(g.abs().max()) for g in grads) > 0


def test_a_sample_budget_cut_keeps_a_share_of_both_groups_aligned(tmp_path):
    trainer = _trainer_with_depth(tmp_path, rays_per_step=64, min_alpha=0.0)
    model, renderer = trainer.model, trainer.renderer
    model.train()
    batch = trainer.data.next_train_batch()
    inputs = model(batch)  # jittered: the budget applies to training renders
    torch.manual_seed(1)
    full = renderer(inputs, batch)
    renderer.train_sample_budget = int(full['meta']['n_samples']) // 3
    torch.manual_seed(1)  # the same jitter
    cut = renderer(inputs, batch)
    n = int(cut['rgb'].shape[0])
    assert n < len(inputs['rays_o'])
    split = model._split_extra_rays(cut, batch)
    kept = split['extra_rays']['depth_loss']
    nb, ne = int(split['rgb'].shape[0]), int(kept['render']['depth'].shape[0])
    assert nb + ne == n and nb > 0 and ne > 0
    assert abs(ne / n - 64 / (128 + 64)) < 0.05  # a proportional share
    ref = model._split_extra_rays(full, batch)  # the kept rays are prefixes of each group
    torch.testing.assert_close(split['rgb'], ref['rgb'][:nb])
    torch.testing.assert_close(kept['render']['depth'],
                               ref['extra_rays']['depth_loss']['render']['depth'][:ne])
    torch.testing.assert_close(kept['depth'], batch['extra_rays']['depth_loss']['depth'][:ne])
    assert 'depth_loss' in model.get_loss_dict(cut, batch)


def test_depth_loss_on_rays_needs_a_model_that_renders_extra_rays(tmp_path):
    trainer = _trainer_with_depth(tmp_path)
    module = trainer.model.scene_modules['depth_loss']
    batch = trainer.data.next_train_batch()  # never through a model's forward
    with pytest.raises(ValueError, match='renders the extra rays'):
        module.loss_terms({}, batch, {})


@pytest.mark.slow
def test_fields_train_with_depth_loss_and_resume_bit_exactly(tmp_path):
    def run(work: str, steps: int, resume: bool = False) -> DefaultTrainer:
        trainer = _trainer_with_depth(tmp_path, rays_per_step=64, min_alpha=0.0)
        trainer.cfg.work_dir = str(tmp_path / work)
        trainer.work_dir = tmp_path / work
        trainer.train_loop.max_iters = steps
        if resume:
            trainer.load_model(tmp_path / 'part' / 'iter_3.pth')
        seen = []
        step = trainer.train_step
        trainer.train_step = lambda b: seen.append(step(b)) or seen[-1]
        trainer.train()
        trainer.seen = seen
        return trainer

    full = run('full', 5)
    assert all('depth_loss' in out for out in full.seen)
    part = run('part', 3)
    part.save_model(tmp_path / 'part' / 'iter_3.pth')
    resumed = run('resumed', 5, resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
