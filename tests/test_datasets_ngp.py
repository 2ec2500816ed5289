"""NGPDataset on the real "fox" scene (distorted, 17 frames missing) and synthetic files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from nerfreg.datasets import DatasetError, NGPDataset
from nerfreg.registry import DATASETS


@pytest.mark.shared_data
def test_fox_loads_50_of_67_with_one_warning_and_undistorts(fox_root):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ds = DATASETS.build(dict(type='NGPDataset', data_root=str(fox_root), downscale=4))
    msgs = [str(w.message) for w in caught if issubclass(w.category, UserWarning)
            and 'missing' in str(w.message)]
    assert len(msgs) == 1 and 'skipped 17 of 67' in msgs[0]
    assert len(ds.train) + len(ds.test) == 50 and len(ds.test) == 7 and len(ds.val) == 0
    assert ds.test.names[:2] == ['0001.jpg', '0012.jpg']
    assert ds.aabb_scale == 4
    assert all(tuple(im.shape) == (480, 270, 3) for im in ds.train.images)
    cams = ds.train.cameras
    assert cams.dist is None
    assert (cams.width == 270).all() and (cams.height == 480).all()
    meta = json.loads((fox_root / 'transforms.json').read_text())
    k_old = np.array([[meta['fl_x'] / 4, 0, meta['cx'] / 4], [0, meta['fl_y'] / 4, meta['cy'] / 4],
                      [0, 0, 1]])
    dist = np.array([meta[k] for k in ('k1', 'k2', 'p1', 'p2')])
    fx, fy, cx, cy = (float(v[0]) for v in (cams.fx, cams.fy, cams.cx, cams.cy))
    # undistortion keeps the focal length within a few percent and only zooms in
    assert fx == pytest.approx(k_old[0, 0], rel=0.03) and fy == pytest.approx(k_old[1, 1], rel=0.03)
    # every pixel of the undistorted image comes from inside the original photo
    u, v = np.meshgrid([0.5, cx, 269.5], [0.5, cy, 479.5])
    rays = np.stack([(u.ravel() - cx) / fx, (v.ravel() - cy) / fy, np.ones(u.size)], 1)
    k_cv = k_old.copy()
    k_cv[:2, 2] -= 0.5
    back = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), k_cv, dist)[0][:, 0] + 0.5
    assert back[:, 0].min() > -0.5 and back[:, 0].max() < 270.5
    assert back[:, 1].min() > -0.5 and back[:, 1].max() < 480.5
    # the image centre ray is unchanged by distortion at the principal point
    np.testing.assert_allclose(back[4], k_old[:2, 2], atol=0.6)
    # poses: OpenGL c2w translations are the camera centres
    first = next(f for f in meta['frames'] if f['file_path'].endswith('0002.jpg'))
    np.testing.assert_allclose(cams.centers()[0].numpy(),
                               np.array(first['transform_matrix'])[:3, 3], atol=1e-4)
    assert ds.scene_extent > 0 and ds.points is None
    assert not (fox_root / 'images_4').exists() and not (fox_root / '.nerfreg_cache').exists()


def write_ngp(root: Path, n: int = 6, size=(40, 30), per_frame: bool = False,
              dist: bool = False, missing: int = 0) -> Path:
    rng = np.random.default_rng(0)
    (root / 'images').mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(n):
        c2w = np.eye(4)
        c2w[:3, 3] = [0.1 * i, 0.0, 3.0]
        frame = dict(file_path=f'images/{i:03d}.png', transform_matrix=c2w.tolist())
        if per_frame:
            frame.update(fl_x=30.0 + i, fl_y=31.0 + i, cx=20.0, cy=15.0, w=size[0], h=size[1])
        if i >= missing:
            cv2.imwrite(str(root / 'images' / f'{i:03d}.png'),
                        rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        frames.append(frame)
    meta = dict(frames=frames, aabb_scale=2)
    if not per_frame:
        meta.update(camera_angle_x=1.0, w=size[0], h=size[1])
    if dist:
        meta.update(fl_x=35.0, fl_y=35.0, cx=20.0, cy=15.0, k1=-0.1, k2=0.01, p1=0.0, p2=0.0)
    (root / 'transforms.json').write_text(json.dumps(meta))
    return root


def test_per_frame_intrinsics_and_angle(tmp_path):
    ds = NGPDataset(write_ngp(tmp_path / 'a', per_frame=True), holdout_every=0)
    np.testing.assert_allclose(ds.train.cameras.fx.numpy(), 30.0 + np.arange(6))
    np.testing.assert_allclose(ds.train.cameras.fy.numpy(), 31.0 + np.arange(6))
    ds = NGPDataset(write_ngp(tmp_path / 'b'), holdout_every=0, downscale=2)
    assert float(ds.train.cameras.fx[0]) == pytest.approx(0.5 * 20 / np.tan(0.5))
    assert tuple(ds.train.images[0].shape) == (15, 20, 3)
    assert not (tmp_path / 'b' / 'images_2').exists()  # cached outside the data


def test_synthetic_distortion_is_removed_and_cached(tmp_path):
    root = write_ngp(tmp_path, dist=True)
    ds = NGPDataset(root, holdout_every=3)
    assert ds.train.cameras.dist is None and len(ds.test) == 2
    assert not (root / '.nerfreg_cache').exists() and ds.image_cache.writes == 6
    again = NGPDataset(root, holdout_every=3)
    assert again.image_cache.hits == 6
    assert all(torch.equal(a, b) for a, b in zip(again.train.images, ds.train.images))


def test_missing_frames_warn_once_and_all_missing_is_an_error(tmp_path):
    root = write_ngp(tmp_path / 'a', missing=2)
    with pytest.warns(UserWarning, match='skipped 2 of 6') as rec:
        ds = NGPDataset(root, holdout_every=0)
    assert len([r for r in rec if 'skipped' in str(r.message)]) == 1 and len(ds.train) == 4
    root = write_ngp(tmp_path / 'b', missing=6)
    with pytest.raises(DatasetError, match='none of the 6 frames'), pytest.warns(UserWarning):
        NGPDataset(root)


def test_inconsistent_json_is_an_error(tmp_path):
    root = write_ngp(tmp_path)
    meta = json.loads((root / 'transforms.json').read_text())
    meta['frames'][2]['transform_matrix'] = [[1, 0, 0], [0, 1, 0]]
    (root / 'transforms.json').write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r'transforms\.json: frame 2 .*4x4'):
        NGPDataset(root)
    (root / 'transforms.json').write_text('{"frames": [')
    with pytest.raises(DatasetError, match='invalid JSON'):
        NGPDataset(root)
    meta['frames'][2]['transform_matrix'] = np.eye(4).tolist()
    del meta['camera_angle_x']
    (root / 'transforms.json').write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match='fl_x'):
        NGPDataset(root)
    assert torch.is_tensor(NGPDataset(write_ngp(tmp_path / 'ok')).background)


def test_scene_reached_through_a_symlink(tmp_path):
    """A data root that is a symlink (e.g. data -> /mnt/datasets/scene) loads the same."""
    real = write_ngp(tmp_path / 'real')
    link = tmp_path / 'link'
    link.symlink_to(real, target_is_directory=True)
    a = NGPDataset(real, holdout_every=0)
    b = NGPDataset(link, holdout_every=0)
    assert b.train.names == a.train.names
    assert all(torch.equal(x, y) for x, y in zip(a.train.images, b.train.images))
