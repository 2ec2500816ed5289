"""Per-image appearance (``appearance``): a known gain is recovered on a toy image, the
transform is the identity for held-out views, and both model families train with it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from nerfreg.engine import DefaultTrainer
from nerfreg.models.appearance import AffineAppearance
from nerfreg.utils.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _module(n: int, **kwargs) -> AffineAppearance:
    module = AffineAppearance(**kwargs)
    module.setup(SimpleNamespace(train=list(range(n))))
    return module


def _fit(module: AffineAppearance, render: torch.Tensor, photos: torch.Tensor,
         steps: int = 150, scene_gain: torch.Tensor | None = None) -> None:
    """Fit the transforms (and ``scene_gain``, a learnt brightness of the scene) to photos."""
    gain = scene_gain if scene_gain is not None else torch.ones(())
    opt = torch.optim.Adam([module.embedding] + ([gain] if gain.requires_grad else []),
                           lr=5e-2)
    batch = dict(split='train', index=torch.arange(len(photos)))
    for _ in range(steps):
        opt.zero_grad()
        loss = (module.transform_rgb(render * gain, batch) - photos).abs().mean()
        loss.backward()
        opt.step()


def test_starts_at_identity_and_held_out_views_are_untouched():
    module = _module(3)
    rgb = torch.rand(2, 5, 4, 3)
    assert torch.equal(module.transform_rgb(rgb, dict(split='train', index=torch.tensor([0, 2]))),
                       rgb)
    with torch.no_grad():
        module.embedding.normal_()
    assert module.transform_rgb(rgb, dict(split='test', index=torch.tensor([0, 1]))) is rgb


def test_known_gain_and_white_balance_are_recovered_on_a_toy_image():
    torch.manual_seed(0)
    render = torch.rand(1, 16, 16, 3)
    gain = torch.tensor([1.4, 1.1, 0.8])
    photo = render * gain
    module = _module(1, center=False)
    _fit(module, render, photo)
    a, b = module.transforms(torch.tensor([0]))
    assert torch.allclose(a[0], torch.diag(gain), atol=0.02), a
    assert b.abs().max() < 0.02
    # centred (the default): the mean transform is the identity and the scene takes the
    # average brightness (1.2); the transforms explain the rest (1.5 / 1.2 and 0.9 / 1.2)
    module = _module(2)
    scene_gain = torch.ones((), requires_grad=True)
    photos = torch.stack([render[0] * 1.5, render[0] * 0.9])
    _fit(module, render.expand(2, -1, -1, -1), photos, 300, scene_gain)
    a, b = module.transforms(torch.arange(2))
    assert torch.allclose(a.mean(0), torch.eye(3), atol=1e-5)
    assert abs(float(scene_gain.detach()) - 1.2) < 0.03
    assert torch.allclose(a[0], torch.eye(3) * 1.25, atol=0.03), a
    assert torch.allclose(a[1], torch.eye(3) * 0.75, atol=0.03), a


def test_ray_batches_use_the_transform_of_their_image():
    module = _module(3, center=False)
    with torch.no_grad():
        module.embedding[1, :9] = torch.eye(3).reshape(-1)  # image 1: gain 2
    rgb = torch.rand(4, 3)
    out = module.transform_rgb(rgb, dict(split='train', cam_index=torch.tensor([0, 1, 1, 2])))
    assert torch.allclose(out, rgb * torch.tensor([1.0, 2.0, 2.0, 1.0])[:, None])


def test_both_families_train_with_appearance_and_camera_opt(tmp_path):
    gs = load_config(REPO / 'configs' / 'gaussian_splatting' / 'demo.py')
    nerf = load_config(REPO / 'configs' / 'nerf' / 'demo.py')
    common = {'device': 'cpu', 'custom_hooks': [], 'data.data_root': str(tmp_path / 'scene'),
              'data.image_size': 24, 'data.n_train': 5, 'data.n_val': 1, 'data.n_test': 2,
              'train_cfg.max_steps': 5, 'train_cfg.val_interval': 0,
              'default_hooks.checkpoint.interval': 1000, 'appearance.enabled': True,
              'camera_opt.enabled': True}
    gs.merge_from_dict({**common, 'work_dir': str(tmp_path / 'gs'), 'data.num_points': 200})
    nerf.merge_from_dict({
        **common, 'work_dir': str(tmp_path / 'nerf'), 'data.rays_per_step': 256,
        'model.field': dict(n_levels=4, log2_table_size=10, base_resolution=4,
                            finest_resolution=48, hidden=16, geo_features=7),
        'model.grid': dict(resolution=16, update_every=2, warmup_steps=4),
        'model.render_step_size': 0.05})
    for cfg in (gs, nerf):
        trainer = DefaultTrainer.from_cfg(cfg)
        names = {g['name'] for g in trainer.optimizer.param_groups}
        assert {'camera_opt', 'appearance'} <= names
        mods = trainer.model.scene_modules
        trainer.train()
        assert mods['appearance'].embedding.abs().sum() > 0
        assert mods['camera_opt'].delta.abs().sum() > 0
        assert trainer.test()['psnr'] > 0
