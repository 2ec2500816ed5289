"""``nerfreg.apis`` used as in a notebook: load a trained checkpoint and a PLY, render
cameras, score the test split, export, render a path."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import cv2
import pytest
import torch

from nerfreg.apis import evaluate, export, init_model, render_path, render_views
from nerfreg.exporters import read_ply

FIXTURES = Path(__file__).parent / 'fixtures'
sys.path.insert(0, str(FIXTURES))

from make_old_checkpoint import tiny_demo_cfg  # noqa: E402

CKPT = FIXTURES / 'old_demo_iter4.pth'


@pytest.fixture(scope='module')
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp('apis')
    return tiny_demo_cfg(root / 'work', root / 'data')


def _psnr(pred: torch.Tensor, image_uint8: torch.Tensor) -> float:
    mse = torch.mean((pred.clamp(0, 1).double() - image_uint8.double() / 255) ** 2)
    return -10 * math.log10(float(mse))


def test_init_from_checkpoint_render_and_evaluate_agree(cfg, tmp_path):
    loaded = init_model(cfg, CKPT, 'cpu')
    assert loaded.step == 4 and loaded.model.num_gaussians == 300
    assert not loaded.model.training
    test = loaded.scene().test
    views = render_views(loaded, test.cameras)
    assert len(views) == len(test.cameras) == 1
    assert views[0]['rgb'].shape == (24, 24, 3) and views[0]['alpha'].shape == (24, 24, 1)
    by_hand = sum(_psnr(v['rgb'], img) for v, img in zip(views, test.images)) / len(views)

    metrics = evaluate(loaded, work_dir=tmp_path / 'eval', write_outputs=True)
    assert abs(metrics['psnr'] - by_hand) < 1e-3, (metrics['psnr'], by_hand)
    written = json.loads((tmp_path / 'eval' / 'test' / 'metrics.json').read_text())
    assert written['checkpoint_step'] == 4 and written['num_views'] == 1
    assert abs(written['mean']['psnr'] - metrics['psnr']) < 1e-9


def test_export_then_init_from_the_ply_renders_the_same(cfg, tmp_path):
    loaded = init_model(cfg, CKPT, 'cpu')
    ply = export(loaded, tmp_path / 'scene.ply')
    state = torch.load(CKPT, weights_only=True)['model']
    assert torch.equal(read_ply(ply)['means'], state['params.means'])
    from_ply = init_model(cfg, ply, 'cpu')
    assert from_ply.step == 0 and from_ply.model.num_gaussians == 300
    cams = loaded.scene().train.cameras[:2]
    for a, b in zip(render_views(loaded, cams), render_views(from_ply, cams)):
        # the PLY model is at its full SH degree, but the higher bands are still zero
        assert torch.allclose(a['rgb'], b['rgb'], atol=1e-5)


@pytest.mark.slow
def test_render_path_writes_the_requested_frames(cfg, tmp_path):
    loaded = init_model(cfg, CKPT, 'cpu')
    summary = render_path(loaded, tmp_path / 'orbit.mp4', 'orbit', frames=4, fps=8,
                          resolution=(32, 16))
    cap = cv2.VideoCapture(summary['out'])
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 32
    cap.release()
    assert summary['step'] == 4 and summary['frames'] == 4
