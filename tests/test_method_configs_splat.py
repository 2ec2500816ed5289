"""The MCMC configs and the stable switches (renderer.rasterize_mode='antialiased',
optimizer.strategy.absgrad=True) train a few steps end to end; checkpoints and PLY
exports record the rasterize mode; MCMC resumes bit-exactly through relocations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nerfreg.engine import DefaultTrainer
from nerfreg.exporters import read_ply_rasterize_mode, write_ply
from nerfreg.utils.config import load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs' / 'gaussian_splatting'
FAST = {'train_cfg.max_steps': 6, 'train_cfg.val_interval': 3, 'custom_hooks': [],
        'default_hooks.checkpoint.interval': 6, 'device': 'cpu'}


def _demo_scene(tmp_path: Path) -> dict:
    return {'data.image_size': 32, 'data.n_train': 8, 'data.n_val': 2, 'data.n_test': 2,
            'data.data_root': str(tmp_path / 'scene')}


def _train(config: str, tmp_path: Path, **overrides) -> DefaultTrainer:
    cfg = load_config(CONFIGS / config)
    cfg.merge_from_dict({**FAST, 'work_dir': str(tmp_path / 'work'), **overrides})
    trainer = DefaultTrainer.from_cfg(cfg)
    before = {k: v.detach().clone() for k, v in trainer.model.params.items()}
    trainer.train()
    assert trainer.global_step == 6
    assert (tmp_path / 'work' / 'iter_6.pth').is_file()
    assert 'psnr' in trainer.val_metrics and trainer.val_metrics['psnr'] > 5
    assert any(not torch.equal(before[k], v[:len(before[k])])
               for k, v in trainer.model.params.items() if len(v) >= len(before[k]))
    return trainer


def test_demo_mcmc_config(tmp_path):
    trainer = _train('demo_mcmc.py', tmp_path, **_demo_scene(tmp_path),
                     **{'optimizer.strategy.refine_start': 1,
                        'optimizer.strategy.refine_every': 2})
    assert type(trainer.optimizer.strategy).__name__ == 'MCMCStrategy'
    # grew by 5% at steps 2 and 4
    assert trainer.model.num_gaussians == int(1.05 * int(1.05 * 4000))
    assert 'opacity_reg' in trainer.model.loss_terms


def test_blender_mcmc_config_from_random_points(tmp_path):
    from nerfreg.datasets.procedural import ProceduralSceneDataset
    root = tmp_path / 'blender_scene'
    ProceduralSceneDataset(data_root=root, image_size=32, n_train=8, n_val=2, n_test=2)
    trainer = _train('blender_mcmc.py', tmp_path, **{'data.data_root': str(root),
                                                    'model.num_random': 2000})
    assert type(trainer.data.dataset).__name__ == 'BlenderDataset'
    assert trainer.model.num_gaussians == 2000


@pytest.mark.slow
def test_colmap_mcmc_config_on_cup(tmp_path, cup_root):
    trainer = _train('colmap_mcmc.py', tmp_path, **{'data.data_root': str(cup_root),
                                                   'data.downscale': 8})
    assert trainer.model.num_gaussians == 9262


@pytest.mark.slow
def test_colmap_short_mcmc_config_on_cup_with_a_small_cap(tmp_path, cup_root):
    trainer = _train('colmap_short_mcmc.py', tmp_path, **{
        'data.data_root': str(cup_root), 'data.downscale': 8,
        'optimizer.strategy.cap_max': 5000})
    assert trainer.model.num_gaussians == 5000  # subsampled from the 9262 SfM points


@pytest.mark.parametrize('short_config', ['colmap_short.py', 'blender_short.py'])
def test_short_mcmc_configs_are_twins_of_their_short_config(short_config):
    short = load_config(CONFIGS / short_config)
    mcmc = load_config(CONFIGS / short_config.replace('.py', '_mcmc.py'))
    assert mcmc.data == short.data and mcmc.model.background == short.model.background
    assert mcmc.train_cfg == short.train_cfg
    assert mcmc.param_scheduler == short.param_scheduler
    assert mcmc.optimizer.strategy.cap_max == short.optimizer.strategy.cap_max
    for key in ('refine_start', 'refine_stop', 'refine_every'):
        assert mcmc.optimizer.strategy[key] == short.optimizer.strategy[key]
    assert mcmc.optimizer.strategy.type == 'MCMCStrategy'
    assert 'grow_grad2d' not in mcmc.optimizer.strategy  # no DefaultStrategy keys left


def test_absgrad_switch_trains_with_the_larger_threshold(tmp_path):
    trainer = _train('demo.py', tmp_path, **_demo_scene(tmp_path), **{
        'optimizer.strategy.absgrad': True, 'optimizer.strategy.refine_start': 2,
        'optimizer.strategy.refine_every': 3})
    strategy = trainer.optimizer.strategy
    assert strategy.absgrad and strategy.grow_grad2d == 0.0008
    assert trainer.model.render_requests == {'absgrad': True}
    assert trainer.model.num_gaussians != 4000  # densified from absolute gradients


def test_antialiased_switch_is_recorded_in_checkpoint_and_ply(tmp_path):
    trainer = _train('demo.py', tmp_path, **_demo_scene(tmp_path),
                     **{'renderer.rasterize_mode': 'antialiased'})
    ckpt = torch.load(tmp_path / 'work' / 'iter_6.pth', map_location='cpu',
                      weights_only=False)
    assert ckpt['renderer'] == {'rasterize_mode': 'antialiased'}
    # loading it for classic rendering warns and names the key
    cfg = load_config(CONFIGS / 'demo.py')
    cfg.merge_from_dict({**FAST, **_demo_scene(tmp_path), 'work_dir': str(tmp_path / 'w2')})
    classic = DefaultTrainer.from_cfg(cfg)
    with pytest.warns(UserWarning, match=r'renderer\.rasterize_mode'):
        classic.load_model(tmp_path / 'work' / 'iter_6.pth', resume=False)
    path = write_ply(trainer.model, tmp_path / 'scene.ply',
                     rasterize_mode=trainer.renderer.rasterize_mode)
    assert read_ply_rasterize_mode(path) == 'antialiased'
    assert read_ply_rasterize_mode(write_ply(trainer.model, tmp_path / 'plain.ply')) is None


def test_mcmc_resume_is_bit_identical_across_relocations(tmp_path):
    scene = tmp_path / 'scene'

    def cfg_for(work, steps, resume=False):
        cfg = load_config(CONFIGS / 'demo_mcmc.py')
        cfg.merge_from_dict({
            'work_dir': str(work), 'resume': resume, 'device': 'cpu', 'seed': 3,
            'data.data_root': str(scene), 'data.image_size': 32, 'data.n_train': 8,
            'data.n_val': 2, 'data.n_test': 2, 'data.num_points': 300,
            'train_cfg.max_steps': steps, 'train_cfg.val_interval': 0, 'custom_hooks': [],
            'optimizer.strategy.refine_start': 3, 'optimizer.strategy.refine_every': 4,
            'optimizer.strategy.min_opacity': 0.45, 'optimizer.strategy.cap_max': 330,
            'default_hooks.checkpoint.interval': 1000})
        return cfg

    full = DefaultTrainer.from_cfg(cfg_for(tmp_path / 'full', 20))
    full.train()
    assert full.model.num_gaussians == 330
    for split in (8, 13):
        work = tmp_path / f'split{split}'
        DefaultTrainer.from_cfg(cfg_for(work, split)).train()
        resumed = DefaultTrainer.from_cfg(cfg_for(work, 20, resume=True))
        resumed.train()
        for name, value in full.model.params.items():
            assert torch.equal(resumed.model.params[name], value), (split, name)
        a = resumed.optimizer.optimizer.state_dict()['state']
        b = full.optimizer.optimizer.state_dict()['state']
        for key in a:
            assert torch.equal(a[key]['exp_avg'], b[key]['exp_avg']), (split, key)
