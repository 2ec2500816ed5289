"""NeRF-W appearance protocol (``appearance.eval_mode='nerfw'``): a fresh per-view transform
fitted on the left half of a held-out view recovers a known gain, the right half is scored
with it under separate keys, the fit never reads right-half pixels, and the scene is
untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nerfreg.engine import DefaultTrainer
from nerfreg.metrics import psnr
from nerfreg.models import GaussianSplatting
from nerfreg.models.appearance import AffineAppearance
from nerfreg.utils.config import load_config

REPO = Path(__file__).resolve().parents[1]
GAIN = torch.tensor([1.3, 0.9, 0.7])


def _view(h: int = 20, w: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    render = torch.rand(1, h, w, 3) * 0.7
    return render, render * GAIN


def test_fit_on_the_left_half_recovers_the_gain_and_scores_the_right_half():
    render, photo = _view()
    module = AffineAppearance(eval_mode='nerfw')
    a, b = module.fit_view_transform(render[:, :, :16], photo[:, :, :16])
    assert torch.allclose(a[0], torch.diag(GAIN), atol=1e-3), a
    assert b.abs().max() < 1e-3
    scores = module.eval_metrics(render, photo, dict(split='test'))
    assert set(scores) == {'psnr_nerfw', 'ssim_nerfw'}
    assert float(psnr(render, photo)) < 25  # the plain metric sees the gain
    assert float(scores['psnr_nerfw']) > 50 and float(scores['ssim_nerfw']) > 0.999
    # the identity mode adds nothing
    assert AffineAppearance().eval_metrics(render, photo, dict(split='test')) == {}


def test_the_fit_never_reads_right_half_pixels():
    render, photo = _view()
    photo[:, :, 16:] = float('nan')  # what the fit must not see
    module = AffineAppearance(eval_mode='nerfw')
    seen = []
    fit = module.fit_view_transform

    def spy(pred, target, weight=None):
        seen.append((pred.shape, target.clone()))
        out = fit(pred, target, weight)
        seen.append(out)
        return out

    module.fit_view_transform = spy
    scores = module.eval_metrics(render, photo, dict(split='test'))
    (shape, target), (a, b) = seen
    assert shape == (1, 20, 16, 3) and not torch.isnan(target).any()
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    assert torch.allclose(a[0], torch.diag(GAIN), atol=1e-3)
    assert torch.isnan(scores['psnr_nerfw']).all()  # the score does read the right half


def test_loss_masks_weight_the_fit():
    render, photo = _view()
    mask = torch.ones(1, 20, 32, 1)
    mask[:, 3:12, 2:10] = 0
    painted = photo.clone()
    painted[:, 3:12, 2:10] = torch.tensor([1.0, 0.0, 1.0])  # a person, say, in the left half
    module = AffineAppearance(eval_mode='nerfw')
    masked = module.eval_metrics(render, painted, dict(split='test', mask=mask))
    unmasked = module.eval_metrics(render, painted, dict(split='test'))
    assert float(masked['psnr_nerfw']) > 50 > float(unmasked['psnr_nerfw'])


def test_nerfw_needs_the_section_on_and_a_known_mode():
    model = GaussianSplatting()
    with pytest.raises(ValueError, match='appearance.enabled=True'):
        model.take_config_sections({'appearance': dict(type='AffineAppearance', enabled=False,
                                                       eval_mode='nerfw')})
    model.take_config_sections({'appearance': dict(type='AffineAppearance', enabled=False)})
    with pytest.raises(ValueError, match="one of \\('identity', 'nerfw'\\)"):
        AffineAppearance(eval_mode='NeRF-W')


class _GainRenderer:
    """Wraps a renderer: held-out views come out as the photo divided by a known gain, i.e.
    a perfect scene seen with another exposure and white balance."""

    def __init__(self, renderer) -> None:
        self.renderer = renderer

    def __call__(self, render_inputs, batch, **kwargs):
        out = self.renderer(render_inputs, batch, **kwargs)
        out['rgb'] = batch['image'] / GAIN
        return out

    def __getattr__(self, name):
        return getattr(self.renderer, name)


def test_test_loop_reports_nerfw_beside_the_plain_metrics_and_leaves_the_model(tmp_path):
    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / 'demo.py')
    cfg.merge_from_dict({
        'device': 'cpu', 'custom_hooks': [], 'work_dir': str(tmp_path / 'run'),
        'data.data_root': str(tmp_path / 'scene'), 'data.image_size': 24, 'data.n_train': 4,
        'data.n_val': 1, 'data.n_test': 2, 'data.num_points': 200, 'train_cfg.max_steps': 2,
        'train_cfg.val_interval': 0, 'default_hooks.checkpoint.interval': 1000,
        'appearance.enabled': True, 'appearance.eval_mode': 'nerfw'})
    trainer = DefaultTrainer.from_cfg(cfg)
    trainer.train()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    plain = trainer.test()
    assert {'psnr', 'ssim', 'psnr_nerfw', 'ssim_nerfw'} <= set(plain)
    trainer.renderer = _GainRenderer(trainer.renderer)
    scores = trainer.test()
    assert scores['psnr'] < 20 and scores['psnr_nerfw'] > 45, scores
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing fitted is kept
