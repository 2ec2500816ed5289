"""Each shipped method config trains a few steps on its matching data, then scores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nerfreg.engine import DefaultTrainer
from nerfreg.utils.config import load_config

REPO = Path(__file__).resolve().parents[1]
FAST = {'train_cfg.max_steps': 6, 'train_cfg.val_interval': 3, 'custom_hooks': [],
        'default_hooks.checkpoint.interval': 6, 'device': 'cpu'}


def _train(config: str, tmp_path: Path, **overrides) -> DefaultTrainer:
    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / config)
    cfg.merge_from_dict({**FAST, 'work_dir': str(tmp_path / 'work'), **overrides})
    trainer = DefaultTrainer.from_cfg(cfg)
    before = {k: v.detach().clone() for k, v in trainer.model.params.items()}
    trainer.train()
    assert trainer.global_step == 6
    assert (tmp_path / 'work' / 'iter_6.pth').is_file()
    assert 'psnr' in trainer.val_metrics and trainer.val_metrics['psnr'] > 5
    moved = any(not torch.equal(before[k], v) for k, v in trainer.model.params.items()
                if k in before and before[k].shape == v.shape)
    assert moved
    return trainer


def test_demo_config(tmp_path):
    trainer = _train('demo.py', tmp_path, **{'data.image_size': 32, 'data.n_train': 8,
                                            'data.n_val': 2, 'data.n_test': 2,
                                            'data.data_root': str(tmp_path / 'scene')})
    assert trainer.model.num_gaussians > 0


def test_blender_config_on_a_blender_format_scene(tmp_path):
    # the procedural scene is written in the Blender format: load it with BlenderDataset
    from nerfreg.datasets.procedural import ProceduralSceneDataset
    root = tmp_path / 'blender_scene'
    ProceduralSceneDataset(data_root=root, image_size=32, n_train=8, n_val=2, n_test=2)
    assert (root / 'transforms_train.json').is_file()
    trainer = _train('blender.py', tmp_path, **{'data.data_root': str(root),
                                               'model.num_random': 2000})
    assert type(trainer.data.dataset).__name__ == 'BlenderDataset'


@pytest.mark.slow
def test_colmap_config_on_cup(tmp_path, cup_root):
    trainer = _train('colmap.py', tmp_path, **{'data.data_root': str(cup_root),
                                              'data.downscale': 8})
    assert type(trainer.data.dataset).__name__ == 'ColmapDataset'
    assert trainer.model.num_gaussians == 9262  # initialised from the sparse points


@pytest.mark.slow
def test_ngp_config_on_fox(tmp_path, fox_root):
    trainer = _train('ngp.py', tmp_path, **{'data.data_root': str(fox_root),
                                           'data.downscale': 16, 'model.num_random': 2000})
    assert type(trainer.data.dataset).__name__ == 'NGPDataset'
    ds = trainer.data.dataset
    assert len(ds.train) + len(ds.val) + len(ds.test) == 50 and len(ds.val) == 6


def test_colmap_short_config_resolves_to_the_benchmark_setting():
    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / 'colmap_short.py')
    assert cfg.data.dataset.downscale == 4 and cfg.data.dataset.holdout_every == 8
    assert cfg.model.type == 'GaussianSplatting' and cfg.optimizer.type == 'GaussianOptimizer'
    assert cfg.model.background == 'random'  # floater control on opaque photos (issue #19)


def _gradients_of_first_step(tmp_path: Path, view_batching: str) -> dict[str, torch.Tensor]:
    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / 'demo.py')
    cfg.merge_from_dict({**FAST, 'work_dir': str(tmp_path / view_batching), 'seed': 2,
                         'data.data_root': str(tmp_path / 'scene'), 'data.image_size': 32,
                         'data.n_train': 8, 'data.n_val': 2, 'data.n_test': 2,
                         'data.batch_size': 3, 'train_cfg.view_batching': view_batching})
    trainer = DefaultTrainer.from_cfg(cfg)
    captured: dict[str, torch.Tensor] = {}
    update = trainer.optimizer.update_model

    def capture(**info):
        captured.update({k: p.grad.clone() for k, p in trainer.model.params.items()})
        captured['grad2d_views'] = info['means2d'].grad.clone()
        assert info['n_cameras'] == 3 and info['radii'].shape[0] == 3
        return update(**info)

    trainer.optimizer.update_model = capture
    trainer.train_step(trainer.data.next_train_batch())
    return captured


def test_sequential_view_batching_equals_joint_rendering(tmp_path):
    """Three views rendered one by one (gradients accumulated, the data-parallel program)
    give the gradients of one three-camera render, up to float32 summation order."""
    seq = _gradients_of_first_step(tmp_path, 'sequential')
    joint = _gradients_of_first_step(tmp_path, 'joint')
    assert seq.keys() == joint.keys()
    for key, a in seq.items():
        b = joint[key]
        # quaternions of the isotropic initial Gaussians get rounding noise only (~1e-20)
        scale = max(float(b.abs().max()), 1e-12)
        assert float((a - b).abs().max()) <= 1e-4 * scale, key
    assert float(seq['means'].abs().max()) > 1e-6


def test_short_configs_resolve_to_their_scenes():
    for name, root, down in (('blender_short.py', 'mic', 2), ('ngp_short.py', 'fox', 4)):
        cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / name)
        assert cfg.data.dataset.data_root == f'../shared/data/{root}'
        assert cfg.data.dataset.downscale == down
        assert cfg.data.dataset.background == cfg.model.background == 'white'
        assert cfg.optimizer.strategy.reset_every > cfg.train_cfg.max_steps  # no reset


def test_blender_short_config_on_a_blender_format_scene(tmp_path):
    from nerfreg.datasets.procedural import ProceduralSceneDataset
    from nerfreg.models.init import count_views
    root = tmp_path / 'blender_scene'
    ProceduralSceneDataset(data_root=root, image_size=32, n_train=8, n_val=2, n_test=2)
    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / 'blender_short.py')
    cfg.merge_from_dict({**FAST, 'work_dir': str(tmp_path / 'init'), 'model.num_random': 2000,
                         'data.data_root': str(root), 'data.downscale': 1})
    trainer = DefaultTrainer.from_cfg(cfg)  # the start, before any step
    cams = trainer.data.dataset.train.cameras
    assert bool((count_views(trainer.model.params['means'].detach(), cams) >= 4).all())
    trainer = _train('blender_short.py', tmp_path, **{'data.data_root': str(root),
                                                     'data.downscale': 1,
                                                     'model.num_random': 2000})
    assert type(trainer.data.dataset).__name__ == 'BlenderDataset'


@pytest.mark.slow
def test_ngp_short_config_on_fox(tmp_path, fox_root):
    trainer = _train('ngp_short.py', tmp_path, **{'data.data_root': str(fox_root),
                                                 'data.downscale': 16,
                                                 'model.num_random': 2000})
    assert type(trainer.data.dataset).__name__ == 'NGPDataset'
