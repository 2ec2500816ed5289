"""Masked metrics (``masked_metrics`` section): masked PSNR/SSIM against brute-force NumPy
references, and end to end: garbage painted into the masked area of the renders leaves
``psnr_masked`` / ``ssim_masked`` unchanged while the plain metrics move."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nerfreg.datasets.procedural import generate_scene
from nerfreg.engine import DefaultTrainer
from nerfreg.metrics import masked_psnr, masked_ssim, psnr, ssim
from nerfreg.utils.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _psnr_reference(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> float:
    """[H,W,C] images, [H,W] weights: 10 log10(1 / weighted MSE), pixel by pixel."""
    num = den = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            for c in range(a.shape[2]):
                num += m[i, j] * (float(a[i, j, c]) - float(b[i, j, c])) ** 2
                den += m[i, j]
    return 10 * np.log10(1.0 / (num / den))


def _ssim_reference(a: np.ndarray, b: np.ndarray, m: np.ndarray, zero_pad: bool) -> float:
    """Mean SSIM map over the kept pixels, every window summed explicitly (float64): the
    ignored pixels zeroed in both images, an 11x11 Gaussian window (sigma 1.5), population
    statistics; 'valid' windows (centres >= 5 px from the border) or a zero-padded image."""
    x1 = np.arange(11) - 5.0
    g = np.exp(-x1 ** 2 / (2 * 1.5 ** 2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    x = a.astype(np.float64) * m[..., None]
    y = b.astype(np.float64) * m[..., None]
    if zero_pad:
        x, y = np.pad(x, ((5, 5), (5, 5), (0, 0))), np.pad(y, ((5, 5), (5, 5), (0, 0)))
    h, w = a.shape[:2]
    num = den = 0.0
    for i in range(h):
        for j in range(w):
            if m[i, j] == 0:
                continue
            ci, cj = (i, j) if zero_pad else (i - 5, j - 5)  # window's top-left corner
            if not zero_pad and not (0 <= ci <= h - 11 and 0 <= cj <= w - 11):
                continue  # no valid window centred here
            for c in range(a.shape[2]):
                px = x[ci:ci + 11, cj:cj + 11, c]
                py = y[ci:ci + 11, cj:cj + 11, c]
                mx, my = (win * px).sum(), (win * py).sum()
                vx = (win * px * px).sum() - mx * mx
                vy = (win * py * py).sum() - my * my
                cxy = (win * px * py).sum() - mx * my
                s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1)
                                                             * (vx + vy + c2))
                num += m[i, j] * s
                den += m[i, j]
    return num / den


def _random_case(seed: int, h: int = 19, w: int = 23, soft: bool = False):
    rng = np.random.default_rng(seed)
    a = rng.random((h, w, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.15, a.shape), 0, 1).astype(np.float32)
    m = (rng.random((h, w)) > 0.4).astype(np.float32)
    m[4:12, 6:15] = 0  # a block as well as scattered pixels
    if soft:
        m *= rng.random((h, w)).astype(np.float32)
    return a, b, m


@pytest.mark.parametrize('seed,soft', [(0, False), (1, False), (2, True)])
def test_masked_psnr_and_ssim_match_brute_force_references(seed, soft):
    a, b, m = _random_case(seed, soft=soft)
    ta, tb = torch.from_numpy(a)[None], torch.from_numpy(b)[None]
    tm = torch.from_numpy(m)[None, ..., None]
    assert abs(float(masked_psnr(ta, tb, tm)) - _psnr_reference(a, b, m)) < 1e-4
    for padding, zero_pad in (('valid', False), ('same', True)):
        got = float(masked_ssim(ta, tb, tm, padding=padding))
        assert abs(got - _ssim_reference(a, b, m, zero_pad)) < 1e-5, padding


def test_all_ones_mask_gives_the_plain_metrics_and_batches_are_per_view():
    a, b, _ = _random_case(3, 24, 30)
    ta = torch.from_numpy(np.stack([a, b]))
    tb = torch.from_numpy(np.stack([b, b * 0.5]))
    ones = torch.ones(2, 24, 30, 1)
    torch.testing.assert_close(masked_psnr(ta, tb, ones), psnr(ta, tb))
    torch.testing.assert_close(masked_ssim(ta, tb, ones), ssim(ta, tb))
    half = ones.clone()
    half[1, :, 15:] = 0  # view 0 keeps everything: its values do not depend on view 1's mask
    assert torch.equal(masked_psnr(ta, tb, half)[0], masked_psnr(ta, tb, ones)[0])
    assert not torch.equal(masked_psnr(ta, tb, half)[1], masked_psnr(ta, tb, ones)[1])


def _blender_trainer(root: Path, tmp_path: Path, name: str, **options) -> DefaultTrainer:
    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / 'demo.py')
    cfg.merge_from_dict({
        'device': 'cpu', 'custom_hooks': [], 'work_dir': str(tmp_path / name),
        'data.dataset': dict(_delete_=True, type='BlenderDataset', data_root=str(root),
                             alpha_mask=True),
        'model.num_random': 2000, 'train_cfg.max_steps': 3, 'train_cfg.val_interval': 0,
        'default_hooks.checkpoint.interval': 1000, **options})
    return DefaultTrainer.from_cfg(cfg)


class _PaintMaskedArea:
    """Wraps a renderer: writes garbage into the pixels the batch's mask ignores."""

    def __init__(self, renderer) -> None:
        self.renderer = renderer

    def __call__(self, render_inputs, batch, **kwargs):
        out = self.renderer(render_inputs, batch, **kwargs)
        hidden = batch['mask'] == 0  # [B,H,W,1]
        noise = torch.rand(out['rgb'].shape, generator=torch.Generator().manual_seed(1))
        out['rgb'] = torch.where(hidden, noise, out['rgb'])
        return out

    def __getattr__(self, name):
        return getattr(self.renderer, name)


def test_garbage_in_the_masked_area_leaves_the_masked_metrics_unchanged(tmp_path):
    root = tmp_path / 'scene'
    generate_scene(root, image_size=32, n_train=6, n_val=1, n_test=3, num_points=300)
    trainer = _blender_trainer(root, tmp_path, 'run', **{'masked_metrics.enabled': True})
    clean = trainer.test()
    assert {'psnr', 'ssim', 'psnr_masked', 'ssim_masked'} <= set(clean)
    trainer.renderer = _PaintMaskedArea(trainer.renderer)
    painted = trainer.test()
    assert abs(painted['psnr_masked'] - clean['psnr_masked']) < 1e-6
    assert abs(painted['ssim_masked'] - clean['ssim_masked']) < 1e-6
    assert abs(painted['psnr'] - clean['psnr']) > 0.1
    assert abs(painted['ssim'] - clean['ssim']) > 0.01
    # the masked metrics really differ from the plain ones (the masks drop the background)
    assert abs(clean['psnr_masked'] - clean['psnr']) > 0.1
    # off by default: no masked keys
    plain = _blender_trainer(root, tmp_path, 'plain')
    assert 'psnr_masked' not in plain.test()


def test_masked_metrics_without_masks_fail_before_training(tmp_path):
    root = tmp_path / 'scene'
    generate_scene(root, image_size=16, n_train=3, n_val=1, n_test=1, num_points=50)
    with pytest.raises(ValueError, match=r'(?s)(val|test) views .* have no masks.*alpha_mask=True'):
        _blender_trainer(root, tmp_path, 'nomask', **{'masked_metrics.enabled': True,
                                                      'data.dataset.alpha_mask': False})
