"""Output hooks in isolation: rank gating, names, and a PLY loaded into a live trainer."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from nerfreg.engine import DefaultTrainer
from nerfreg.engine.hooks import FinalExportHook, TestOutputHook, VisualizationHook
from nerfreg.engine.hooks.visualization_hook import safe_name
from nerfreg.exporters import load_ply_into_model, read_ply, write_ply
from nerfreg.registry import HOOKS
from nerfreg.utils.config import load_config

REPO = Path(__file__).resolve().parents[1]


class _Recorder:
    def __init__(self) -> None:
        self.images: list[tuple[str, tuple, int]] = []

    def add_image(self, name: str, image: np.ndarray, step: int = 0) -> None:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.images.append((name, image.shape, step))


def _outputs(h: int = 16, w: int = 20) -> dict:
    return dict(render_results=dict(rgb=torch.rand(1, h, w, 3), depth=torch.rand(1, h, w, 1) + 1,
                                    alpha=torch.ones(1, h, w, 1)),
                metrics=dict(psnr=torch.tensor([20.0])))


def test_visualization_hook_draws_first_views_on_rank_zero_only():
    hook = VisualizationHook(max_images=2)
    vis = _Recorder()
    runner = SimpleNamespace(rank=0, global_step=7, visualizer=vis, model=None)
    for idx in range(4):
        batch = dict(image=torch.rand(1, 16, 20, 3), name=[f'views/img_{idx}.png'])
        hook.after_val_iter(runner, idx, batch, _outputs())
    assert [(n, s) for n, _, s in vis.images] == [('val_views_img_0', 7), ('val_views_img_1', 7)]
    assert vis.images[0][1][1] == 4 * 20 + 3 * 2  # render | GT | error | depth
    runner.rank = 1
    hook.after_val_iter(runner, 0, dict(image=torch.rand(1, 16, 20, 3), name=['a']), _outputs())
    assert len(vis.images) == 2


def test_hooks_are_registered_and_names_are_safe():
    for name in ('VisualizationHook', 'TestOutputHook', 'FinalExportHook'):
        assert HOOKS.get(name) is not None
    assert isinstance(HOOKS.build(dict(type='TestOutputHook')), TestOutputHook)
    assert isinstance(HOOKS.build(dict(type='FinalExportHook')), FinalExportHook)
    assert safe_name('images/DSC 001.JPG') == 'images_DSC_001'
    assert safe_name('r_0') == 'r_0'


def test_ply_initialises_a_trainer_model_and_training_continues(tmp_path):
    cfg = load_config(REPO / 'configs/gaussian_splatting/demo.py', {
        'data.image_size': 24, 'data.n_train': 4, 'data.n_val': 1, 'data.n_test': 1,
        'data.num_points': 200, 'data.data_root': str(tmp_path / 'data'), 'device': 'cpu',
        'train_cfg.max_steps': 3, 'train_cfg.val_interval': 0, 'custom_hooks': [],
        'work_dir': str(tmp_path / 'work')})
    trainer = DefaultTrainer(cfg)
    subset = {k: v.detach()[:77].clone() for k, v in trainer.model.params.items()}
    path = write_ply(subset, tmp_path / 'init.ply')
    assert load_ply_into_model(trainer.model, path) == 77
    assert trainer.model.num_gaussians == 77
    trainer.train()  # the optimizer follows the new parameters
    assert bool(torch.isfinite(trainer.model.params['means']).all())
    moved = read_ply(write_ply(trainer.model, tmp_path / 'after.ply'))['means']
    assert not torch.equal(moved[:77], subset['means'])
