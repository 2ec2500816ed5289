"""BlenderDataset and the procedural scene (which is written and read in the Blender format)."""

from __future__ import annotations

import json
import shutil
import time

import cv2
import numpy as np
import pytest
import torch

from nerfreg.datasets import BlenderDataset, DatasetError, ProceduralSceneDataset
from nerfreg.datasets.procedural import generate_scene
from nerfreg.registry import DATASETS

SMALL = dict(image_size=32, n_train=8, n_val=2, n_test=3, num_points=500)


@pytest.fixture
def small_scene(tmp_path):
    root = tmp_path / 'scene'
    generate_scene(root, **SMALL)
    return root


def test_blender_loads_composites_and_keeps_alpha(small_scene):
    white = BlenderDataset(small_scene)
    black = BlenderDataset(small_scene, background='black')
    grey = BlenderDataset(small_scene, background=[0.5, 0.5, 0.5])
    assert (len(white.train), len(white.val), len(white.test)) == (8, 2, 3)
    assert white.points is None and white.points_rgb is None
    a = white.train.alphas[0]
    assert a.shape == (32, 32, 1) and a.dtype == torch.uint8
    empty = a[..., 0] == 0
    assert empty.any() and (a[..., 0] == 255).any()
    assert (white.train.images[0][empty] == 255).all() and (black.train.images[0][empty] == 0).all()
    assert (grey.train.images[0][empty] == 128).all()
    full = a[..., 0] == 255
    assert torch.equal(white.train.images[0][full], black.train.images[0][full])
    torch.testing.assert_close(white.background, torch.ones(3))
    cams = white.train.cameras
    meta = json.loads((small_scene / 'transforms_train.json').read_text())
    assert float(cams.fx[0]) == pytest.approx(16 / np.tan(meta['camera_angle_x'] / 2))
    assert float(cams.cx[0]) == 16.0 and cams.names[0] == 'train/r_0'


def test_blender_resized_copy_uses_real_image_size(small_scene, tmp_path):
    copy = tmp_path / 'resized'
    shutil.copytree(small_scene, copy)
    for png in copy.glob('*/r_*.png'):
        img = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(png), cv2.resize(img, (16, 16), interpolation=cv2.INTER_AREA))
    orig, small = BlenderDataset(small_scene), BlenderDataset(copy)
    assert tuple(small.train.images[0].shape) == (16, 16, 3)
    torch.testing.assert_close(small.train.cameras.Ks(), orig.train.cameras.scaled(2).Ks())
    down = BlenderDataset(small_scene, downscale=2)
    torch.testing.assert_close(down.train.cameras.Ks(), small.train.cameras.Ks())
    assert not (small_scene / 'train_2').exists()  # cached outside the data


def test_blender_camera_angle_y_and_missing_val(small_scene):
    meta = json.loads((small_scene / 'transforms_train.json').read_text())
    meta['camera_angle_y'] = 0.5
    (small_scene / 'transforms_train.json').write_text(json.dumps(meta))
    (small_scene / 'transforms_val.json').unlink()
    ds = BlenderDataset(small_scene)
    assert float(ds.train.cameras.fy[0]) == pytest.approx(16 / np.tan(0.25))
    assert ds.val is ds.test


def test_blender_bad_inputs(small_scene, tmp_path):
    with pytest.raises(DatasetError, match='does not exist'):
        BlenderDataset(tmp_path / 'nope')
    meta = json.loads((small_scene / 'transforms_test.json').read_text())
    meta['frames'][1]['file_path'] = './test/gone'
    (small_scene / 'transforms_test.json').write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r'transforms_test\.json: frame 1: image .*gone'):
        BlenderDataset(small_scene)
    with pytest.raises(DatasetError, match='background'):
        BlenderDataset(small_scene, background='pink')


def test_procedural_points_project_inside_silhouettes(tmp_path):
    ds = DATASETS.build(dict(type='ProceduralSceneDataset', data_root=str(tmp_path / 'p'),
                             **SMALL))
    assert isinstance(ds, ProceduralSceneDataset) and (tmp_path / 'p' / 'params.json').is_file()
    assert ds.points.shape == (500, 3) and ds.points_rgb.shape == (500, 3)
    assert 0 <= float(ds.points_rgb.min()) and float(ds.points_rgb.max()) <= 1
    # surface points must fall on the rendered objects (whatever occludes them)
    uv, depth = ds.train.cameras.project(ds.points)
    assert bool((depth > 0).all())
    hits = []
    for k, alpha in enumerate(ds.train.alphas):
        px = uv[k].floor().long().clamp(0, 31)
        hits.append(alpha[px[:, 1], px[:, 0], 0] > 0)
    assert float(torch.stack(hits).float().mean()) > 0.99
    # cached: a second build does not render again
    stamp = (tmp_path / 'p' / 'params.json').stat().st_mtime_ns
    ProceduralSceneDataset(data_root=tmp_path / 'p', **SMALL)
    assert (tmp_path / 'p' / 'params.json').stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_procedural_defaults_generate_quickly_into_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('NERFREG_CACHE_DIR', str(tmp_path))
    t0 = time.perf_counter()
    ds = ProceduralSceneDataset()
    elapsed = time.perf_counter() - t0
    assert (len(ds.train), len(ds.val), len(ds.test)) == (100, 10, 20)
    assert tuple(ds.train.images[0].shape) == (128, 128, 3)
    assert len(list((tmp_path / 'procedural').iterdir())) == 1
    assert elapsed < 40, elapsed  # ~3-6 s on an idle 2-core CPU
    t0 = time.perf_counter()
    ProceduralSceneDataset()
    assert time.perf_counter() - t0 < elapsed


def test_procedural_regenerates_stale_scene_and_guards_foreign_folders(tmp_path):
    root = tmp_path / 'p'
    ProceduralSceneDataset(data_root=root, **SMALL)
    other = dict(SMALL, n_train=5)
    ds = ProceduralSceneDataset(data_root=root, **other)  # parameters changed: re-rendered
    assert len(ds.train) == 5 and not list(tmp_path.glob('.procedural_*'))
    foreign = tmp_path / 'mine'
    foreign.mkdir()
    (foreign / 'keep.txt').write_text('user data')
    with pytest.raises(DatasetError, match='not a procedural scene'):
        ProceduralSceneDataset(data_root=foreign, **SMALL)
    assert (foreign / 'keep.txt').is_file()
