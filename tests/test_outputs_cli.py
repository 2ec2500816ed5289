"""End to end on a tiny demo run: train (val images to TensorBoard, final PLY + test outputs)
-> tools/test.py -> tools/export.py -> tools/render.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from nerfreg.cli.export import main as export_main
from nerfreg.cli.render import main as render_main
from nerfreg.cli.test import main as run_test_cli
from nerfreg.cli.train import main as train_main
from nerfreg.engine import load_checkpoint
from nerfreg.exporters import read_ply

REPO = Path(__file__).resolve().parents[1]


def _tiny(data_root: Path) -> list[str]:
    return ['data.image_size=32', 'data.n_train=8', 'data.n_val=2', 'data.n_test=3',
            'data.num_points=300', f'data.data_root={data_root}']


@pytest.fixture(scope='module')
def run(tmp_path_factory) -> dict:
    """One 20-step demo run with LocalVisBackend + TensorboardVisBackend, val every 10."""
    root = tmp_path_factory.mktemp('outputs')
    config = root / 'demo_tb.py'
    config.write_text(
        f"_base_ = ['{REPO / 'configs/gaussian_splatting/demo.py'}']\n"
        "visualizer = dict(vis_backends=[dict(type='LocalVisBackend'),\n"
        "                                dict(type='TensorboardVisBackend')])\n")
    tiny = _tiny(root / 'data')
    work = root / 'train'
    assert train_main([str(config), '--work-dir', str(work), '--device', 'cpu',
                       '--cfg-options', 'train_cfg.max_steps=20', 'train_cfg.val_interval=10',
                       *tiny]) == 0
    return dict(root=root, config=config, tiny=tiny, work=work, ckpt=work / 'iter_20.pth')


def _psnr_from_pngs(render: Path, gt: Path) -> float:
    a = cv2.imread(str(render)).astype(np.float64) / 255.0
    b = cv2.imread(str(gt)).astype(np.float64) / 255.0
    return 10 * math.log10(1.0 / np.mean((a - b) ** 2))


def test_training_writes_final_outputs_and_tensorboard_images(run):
    work = run['work']
    assert (work / 'point_cloud.ply').is_file()
    params = read_ply(work / 'point_cloud.ply')
    state = load_checkpoint(run['ckpt'])['model']
    assert torch.equal(params['means'], state['params.means'])
    metrics = json.loads((work / 'test' / 'metrics.json').read_text())
    assert metrics['checkpoint_step'] == 20 and metrics['num_views'] == 3
    assert (work / 'test' / 'comparison.png').is_file()

    images = sorted(p.name for p in work.rglob('vis_image/*.png'))
    assert images == ['val_r_0_10.png', 'val_r_0_20.png', 'val_r_1_10.png', 'val_r_1_20.png']
    events = list(work.rglob('events.out.tfevents.*'))
    assert events, 'TensorboardVisBackend wrote no event file'
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(events[0].parent), size_guidance={'images': 0})
    acc.Reload()
    tags = acc.Tags()['images']
    assert {'val_r_0', 'val_r_1'} <= set(tags)
    shots = acc.Images('val_r_0')
    assert [s.step for s in shots] == [10, 20]
    decoded = cv2.imdecode(np.frombuffer(shots[-1].encoded_image_string, np.uint8),
                           cv2.IMREAD_COLOR)
    assert decoded.shape[0] > 32 and decoded.shape[1] >= 3 * 32  # render | GT | error | depth


def test_tools_test_writes_renders_gt_sheet_and_consistent_metrics(run, capsys):
    out = run['root'] / 'test_run'
    assert run_test_cli([str(run['config']), str(run['ckpt']), '--work-dir', str(out),
                      '--device', 'cpu', '--cfg-options', 'custom_hooks=[]', *run['tiny']]) == 0
    printed = capsys.readouterr().out
    assert 'psnr' in printed
    test_dir = out / 'test'
    metrics = json.loads((test_dir / 'metrics.json').read_text())
    assert metrics['checkpoint_step'] == 20
    state = load_checkpoint(run['ckpt'])['model']
    assert metrics['num_gaussians'] == state['params.means'].shape[0]
    assert metrics['num_views'] == 3 and len(metrics['views']) == 3
    assert (test_dir / 'comparison.png').is_file()
    for key in ('psnr', 'ssim', 'render_time_s'):
        assert math.isfinite(metrics['mean'][key])
    recomputed = []
    for view in metrics['views']:
        render, gt = test_dir / view['render'], test_dir / view['gt']
        assert render.is_file() and gt.is_file()
        assert cv2.imread(str(render)).shape == (32, 32, 3)
        psnr = _psnr_from_pngs(render, gt)
        assert abs(psnr - view['psnr']) < 0.05, (view['name'], psnr, view['psnr'])
        recomputed.append(psnr)
    assert abs(np.mean(recomputed) - metrics['mean']['psnr']) < 0.05
    assert sorted(p.name for p in (test_dir / 'renders').iterdir()) == [
        'test_r_0.png', 'test_r_1.png', 'test_r_2.png']


def test_tools_export_ply_and_splat(run, capsys):
    out = run['root'] / 'export' / 'scene.ply'
    assert export_main([str(run['config']), str(run['ckpt']), '--out', str(out)]) == 0
    state = load_checkpoint(run['ckpt'])['model']
    params = read_ply(out)
    for name, value in params.items():
        assert torch.equal(value, state[f'params.{name}']), name
    splat = out.with_suffix('.splat')
    assert export_main([str(run['config']), str(run['ckpt']), '--out', str(splat)]) == 0
    assert splat.stat().st_size == 32 * state['params.means'].shape[0]
    assert 'Exported' in capsys.readouterr().out


def test_tools_render_video_has_requested_frames_and_size(run):
    out = run['root'] / 'video' / 'orbit.mp4'
    assert render_main([str(run['config']), str(run['ckpt']), '--out', str(out), '--frames',
                        '7', '--fps', '10', '--resolution', '48x32', '--depth', '--device',
                        'cpu', '--cfg-options', *run['tiny']]) == 0
    for path in (out, out.with_name('orbit_depth.mp4')):
        cap = cv2.VideoCapture(str(path))
        assert cap.isOpened(), path
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        assert len(frames) == 7, path
        assert frames[0].shape == (32, 48, 3)
        assert np.std(np.stack(frames).astype(float)) > 1.0  # not blank


def test_tools_render_interpolate_path(run):
    out = run['root'] / 'video' / 'interp.mp4'
    assert render_main([str(run['config']), str(run['ckpt']), '--out', str(out), '--path',
                        'interpolate', '--frames', '5', '--device', 'cpu', '--cfg-options',
                        *run['tiny']]) == 0
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 32
    cap.release()


def test_tools_render_follows_a_viewer_path_file(run):
    from nerfreg.apis import init_model
    from nerfreg.viewer.camera import cameras_to_poses
    from nerfreg.viewer.path_file import write_camera_path
    loaded = init_model(run['config'], run['ckpt'], 'cpu',
                        cfg_options=dict(a.split('=', 1) for a in run['tiny']))
    keys = cameras_to_poses(loaded.scene().train.cameras)[:3]
    path = write_camera_path(run['root'] / 'path.json', keys, 7, 40, 24, fps=12)
    out = run['root'] / 'video' / 'from_file.mp4'
    assert render_main([str(run['config']), str(run['ckpt']), '--out', str(out),
                        '--path-file', str(path), '--device', 'cpu', '--cfg-options',
                        *run['tiny']]) == 0
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) \
        == (40, 24)
    assert cap.get(cv2.CAP_PROP_FPS) == 12
    cap.release()
