"""nerfreg-process end to end on real photos: a video of cup, a cup subset against the
shipped reconstruction, too few registered views, and resuming."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from nerfreg.cameras.conventions import qvec_to_rotmat
from nerfreg.datasets.colmap_io import read_model
from nerfreg.process.align import colmap_poses, compare_poses
from nerfreg.process.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]
REPO = Path(__file__).resolve().parents[1]


def _stages(scene: Path) -> dict:
    return json.loads((scene / 'report.json').read_text())['stages']


def _cup_video(path: Path, cup: Path, ids: range, size=(640, 480)) -> list[int]:
    """Each cup photo becomes 3 frames (blurred, sharp, blurred); return the sharp indices."""
    cup = cup / 'images'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 6, size)
    for i in ids:
        img = cv2.resize(cv2.imread(str(cup / f'{i}.jpg')), size, interpolation=cv2.INTER_AREA)
        blurred = cv2.GaussianBlur(img, (0, 0), 2.0)
        for frame in (blurred, img, blurred):
            writer.write(frame)
    writer.release()
    return [3 * k + 1 for k in range(len(ids))]


def _mean_reprojection_px(scene: Path) -> float:
    """Mean distance between the observations of the undistorted model and the pinhole
    projections of their 3D points (computed here, independently of COLMAP)."""
    cams, images, points = read_model(scene / 'sparse' / '0')
    xyz = dict(zip(points.ids.tolist(), points.xyz))
    errs = []
    for im in images.values():
        cam = cams[im.camera_id]
        assert cam.model == 'PINHOLE'
        fx, fy, cx, cy = cam.params
        assert cv2.imread(str(scene / 'images' / im.name)).shape[:2] == (cam.height, cam.width)
        keep = im.point3D_ids >= 0
        world = np.stack([xyz[int(i)] for i in im.point3D_ids[keep]])
        p = world @ qvec_to_rotmat(im.qvec).T + im.tvec
        uv = np.stack([fx * p[:, 0] / p[:, 2] + cx, fy * p[:, 1] / p[:, 2] + cy], 1)
        errs.append(np.linalg.norm(uv - im.xys[keep], axis=1))
    return float(np.concatenate(errs).mean())


def test_video_to_trained_scene_and_resume(tmp_path, cup_root):
    from nerfreg.datasets import ColmapDataset
    from nerfreg.engine import DefaultTrainer
    from nerfreg.utils.config import load_config

    video, scene = tmp_path / 'cup.mp4', tmp_path / 'scene'
    sharp = _cup_video(video, cup_root, range(1, 15))
    args = ['video', str(video), '--out', str(scene), '--num-frames', '14',
            '--max-size', '480', '--num-threads', '2', '--quiet']
    assert main(args) == 0
    report = json.loads((scene / 'report.json').read_text())
    assert report['frame_indices'] == sharp  # the sharp frame of every window
    assert report['matcher'] == 'sequential' and report['images_given'] == 14
    assert report['images_registered'] >= 12, report['not_registered']
    assert report['mean_reprojection_error_px'] < 1.5 and report['points'] > 200
    assert set(report['stages']) == {'frames', 'extract', 'match', 'map', 'undistort'}
    assert not any(s['reused'] for s in report['stages'].values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cup.mp4', 'scene']
    assert abs(_mean_reprojection_px(scene) - report['mean_reprojection_error_px']) < 0.5

    # a rerun reuses every stage and leaves their outputs untouched
    outputs = [scene / 'colmap' / 'sparse' / '0' / 'images.bin', scene / 'sparse' / '0' /
               'images.bin', scene / 'images' / 'frame_00001.jpg']
    mtimes = [p.stat().st_mtime_ns for p in outputs]
    assert main(args) == 0
    assert all(s['reused'] for s in _stages(scene).values())
    assert [p.stat().st_mtime_ns for p in outputs] == mtimes

    data = ColmapDataset(scene, downscale=4)
    assert len(data.train) + len(data.test) == report['images_registered']
    cfg = load_config(REPO / 'configs' / 'gaussian_splatting' / 'colmap_short.py')
    cfg.merge_from_dict({'train_cfg.max_steps': 20, 'train_cfg.val_interval': 20,
                         'custom_hooks': [], 'default_hooks.checkpoint.interval': 20,
                         'device': 'cpu', 'data.data_root': str(scene),
                         'work_dir': str(tmp_path / 'work')})
    trainer = DefaultTrainer.from_cfg(cfg)
    assert trainer.model.num_gaussians == report['points']  # initialised from the SfM points
    before = trainer.validation()['psnr']
    trainer.train()
    # trainable: 20 steps on the processed scene improve the held-out views
    assert trainer.global_step == 20 and trainer.val_metrics['psnr'] > before + 0.5


def test_cup_subset_agrees_with_the_shipped_reconstruction(tmp_path, cup_root):
    cup = cup_root
    photos = tmp_path / 'photos'
    photos.mkdir()
    for i in range(1, 16):  # 16.jpg shares no view with these at 400 px
        (photos / f'{i}.jpg').symlink_to(cup / 'images' / f'{i}.jpg')
    scene = tmp_path / 'scene'
    assert main(['images', str(photos), '--out', str(scene), '--max-size', '400',
                 '--num-threads', '2', '--quiet']) == 0
    report = json.loads((scene / 'report.json').read_text())
    assert report['images_registered'] == 15 and report['camera_model'] == 'SIMPLE_RADIAL'
    cams, _, _ = read_model(scene / 'colmap' / 'sparse' / '0')
    assert [(c.width, c.height) for c in cams.values()] == [(800, 600)]  # original pixels
    assert _mean_reprojection_px(scene) < 1.5
    err = compare_poses(colmap_poses(scene / 'sparse' / '0'), colmap_poses(cup / 'sparse' / '0'))
    assert err['num_common'] == 15
    assert err['centre_rms_rel'] < 0.03, err  # a wrong pose or axis convention gives > 0.2
    assert err['rotation_median_deg'] < 3.0, err


def test_too_few_registered_lists_them_then_resumes(tmp_path, capsys, cup_root):
    cup = cup_root
    photos = tmp_path / 'photos'
    photos.mkdir()
    for i in range(1, 9):
        (photos / f'{i}.jpg').symlink_to(cup / 'images' / f'{i}.jpg')
    rng = np.random.default_rng(0)
    noise = [f'zz_noise_{k}.png' for k in range(9)]
    for name in noise:  # unrelated views that cannot register
        img = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 1)
        cv2.imwrite(str(photos / name), img)
    scene = tmp_path / 'scene'
    args = ['images', str(photos), '--out', str(scene), '--max-size', '400',
            '--num-threads', '2', '--quiet']
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: only ') and 'not registered' in err
    assert all(name in err for name in noise)
    report = json.loads((scene / 'report.json').read_text())
    assert report['status'] == 'too few registered' and set(noise) <= set(
        report['not_registered'])
    assert not (scene / 'sparse').exists()

    assert main(args[:-1] + ['--min-registered', '0', '--quiet']) == 0
    stages = _stages(scene)
    assert all(stages[s]['reused'] for s in ('check', 'extract', 'match', 'map'))
    assert not stages['undistort']['reused']
    assert len(read_model(scene / 'sparse' / '0')[1]) == report['images_registered']
