"""``nerfreg-process triangulate`` on a 12-frame subset of the real fox capture (known poses,
OpenCV distortion): the conventions are proved by reprojecting every triangulated point with
the transforms' own (distorted) cameras, computed here with OpenCV, not COLMAP; then
``NGPDataset(sparse_dir=...)``, the cache, and the errors."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from nerfreg.cameras import Cameras
from nerfreg.cameras.conventions import qvec_to_rotmat
from nerfreg.datasets import NGPDataset
from nerfreg.datasets.base import DatasetError
from nerfreg.datasets.blender import read_json
from nerfreg.datasets.colmap_io import read_model, write_model
from nerfreg.datasets.ngp import frame_intrinsics, read_frames
from nerfreg.datasets.pipeline import split_data_cfg
from nerfreg.models.depth_loss import SparseDepthLoss
from nerfreg.process import sfm
from nerfreg.process.cli import main
from nerfreg.process.triangulate import REPORT, TriangulateOptions, triangulate
from nerfreg.registry import DATASETS
from tests.conftest import shared_scene

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]
MAX_SIZE = 800
FRAMES = 12  # consecutive existing frames; the listed ones between them whose image is missing


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in path.rglob('*')}


@pytest.fixture(scope='module')
def fox12(tmp_path_factory):
    """(scene folder, transforms, model folder, cache root, data trees before the run)."""
    fox = shared_scene('fox')
    scene = tmp_path_factory.mktemp('fox12')
    (scene / 'images').symlink_to(fox / 'images')  # a subset, without copying any image
    meta = json.loads((fox / 'transforms.json').read_text())
    listed = sorted(meta['frames'], key=lambda f: f['file_path'])
    exists = np.cumsum([(fox / f['file_path']).is_file() for f in listed])
    meta['frames'] = listed[:int(np.searchsorted(exists, FRAMES)) + 1]
    skipped = len(meta['frames']) - FRAMES
    assert skipped > 0  # fox lists frames whose image was deleted: they are skipped
    transforms = scene / 'transforms.json'
    transforms.write_text(json.dumps(meta))
    cache = tmp_path_factory.mktemp('tri_cache')
    before = (_tree(scene), _tree(fox))
    with pytest.warns(UserWarning, match=f'skipped {skipped} of {len(meta["frames"])} frames'):
        assert main(['triangulate', str(transforms), '--max-size', str(MAX_SIZE),
                     '--num-threads', '2', '--cache-dir', str(cache), '--quiet']) == 0
    (model,) = (cache / 'triangulated').iterdir()
    return scene, transforms, model, cache, before


def test_points_reproject_onto_their_observations_with_the_transforms_cameras(fox12):
    scene, transforms, model, _, _ = fox12
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        frames = read_frames(transforms, read_json(transforms))
    meta = read_json(transforms)
    _, images, points = read_model(model)
    assert len(images) == FRAMES and len(points) > 1000
    xyz = dict(zip(points.ids.tolist(), points.xyz))
    by_name = {f[0].name: f for f in frames}
    errors, track_len = [], {}
    for im in images.values():
        file, frame, c2w = by_name[im.name]
        intr = frame_intrinsics(meta, frame, file, transforms)
        cam = Cameras.from_opengl_c2w(torch.from_numpy(c2w)[None].double(), intr['fx'],
                                      intr['fy'], intr['cx'], intr['cy'], intr['w'], intr['h'])
        rot, t = cam.R[0].double().numpy(), cam.t[0].double().numpy()
        # the model keeps the known pose exactly (COLMAP world-to-camera, quaternion wxyz)
        np.testing.assert_allclose(qvec_to_rotmat(im.qvec), rot, atol=1e-6)
        np.testing.assert_allclose(im.tvec, t, atol=1e-5)
        keep = im.point3D_ids >= 0
        world = np.stack([xyz[int(i)] for i in im.point3D_ids[keep]])
        assert ((world @ rot.T + t)[:, 2] > 0).all()  # in front of the camera
        k = np.array([[intr['fx'], 0, intr['cx']], [0, intr['fy'], intr['cy']], [0, 0, 1]])
        uv, _ = cv2.projectPoints(world, cv2.Rodrigues(rot)[0], t, k, intr['dist'])
        errors.append(np.linalg.norm(uv[:, 0] - im.xys[keep], axis=1))
        for i in im.point3D_ids[keep]:
            track_len[int(i)] = track_len.get(int(i), 0) + 1
    err = np.concatenate(errors)
    sift_px = intr['h'] / MAX_SIZE  # one pixel of the image SIFT saw, in original pixels
    print(f'reprojection error: mean {err.mean():.3f} max {err.max():.3f} px')
    assert err.max() < 2 * sift_px and err.mean() < 0.6 * sift_px, (err.mean(), err.max())
    assert min(track_len.values()) >= 2 and len(track_len) == len(points)
    report = json.loads((model / REPORT).read_text())
    assert report['points'] == len(points) and report['frames_used'] == FRAMES
    assert report['mean_track_length'] == pytest.approx(np.mean(list(track_len.values())),
                                                         abs=1e-3)


def test_ngp_dataset_with_sparse_dir_gives_points_each_view_sees(fox12):
    scene, _, model, _, _ = fox12
    with pytest.warns(UserWarning, match='skipped'):
        ds = NGPDataset(scene, downscale=8, sparse_dir=model, holdout_every=4)
    _, images, points = read_model(model)
    assert len(ds.points) == len(points) and ds.points_rgb.shape == (len(points), 3)
    assert 0 <= float(ds.points_rgb.min()) and float(ds.points_rgb.max()) <= 1
    assert float(ds.points_rgb.std()) > 0.02  # real colours, not a constant
    assert set(ds.observed_points) == set(ds.train.names) | set(ds.test.names)
    counts = {im.name: int((im.point3D_ids >= 0).sum()) for im in images.values()}
    for split in (ds.train, ds.test):
        for i, name in enumerate(split.names):
            pts = ds.observed_points[name]
            assert len(pts) == counts[name] > 200
            uv, z = split.cameras[i].project(pts)  # undistorted, downscaled dataset camera
            w, h = int(split.cameras.width[i]), int(split.cameras.height[i])
            inside = ((uv[0, :, 0] >= 0) & (uv[0, :, 0] < w) & (uv[0, :, 1] >= 0)
                      & (uv[0, :, 1] < h))
            assert bool((z > 0).all())
            # the undistorted crop may cut a sliver of the distorted border
            assert float(inside.float().mean()) > 0.99
    depth = SparseDepthLoss()  # what depth_loss.enabled=True builds
    depth.setup(ds)
    assert depth.points.shape[0] == sum(counts[n] for n in ds.train.names)
    # the config route: data.sparse_dir / data.max_points given on the command line
    cfg = dict(type='DataPipeline', dataset=dict(type='NGPDataset', data_root=str(scene),
                                                 downscale=8),
               sparse_dir=str(model), max_points=100)
    with pytest.warns(UserWarning, match='skipped'):
        small = DATASETS.build(split_data_cfg(cfg)[1])
    assert len(small.points) == 100 and small.observed_points.keys() == ds.observed_points.keys()


def test_second_call_uses_the_cache_and_the_data_folder_is_untouched(fox12, monkeypatch):
    scene, transforms, model, cache, before = fox12
    assert (_tree(scene), _tree(shared_scene('fox'))) == before
    assert not any(p.name in (REPORT, 'database.db', 'points3D.bin')
                   for p in shared_scene('fox').rglob('*'))

    def fail(*args, **kwargs):
        raise AssertionError('features were extracted again')

    monkeypatch.setattr(sfm, 'extract_features', fail)
    monkeypatch.setenv('NERFREG_CACHE_DIR', str(cache))  # the default cache root
    with pytest.warns(UserWarning, match='skipped'):
        rep = triangulate(TriangulateOptions(transforms, max_size=MAX_SIZE, quiet=True))
    assert rep['reused'] and Path(rep['out']) == model
    with pytest.warns(UserWarning), pytest.raises(AssertionError, match='extracted again'):
        triangulate(TriangulateOptions(transforms, max_size=MAX_SIZE + 1, quiet=True))
    assert [p.name for p in (cache / 'triangulated').iterdir()] == [model.name]  # no debris


def test_a_model_of_other_frames_or_poses_is_refused(fox12, tmp_path):
    scene, _, model, _, _ = fox12
    cams, images, points = read_model(model)
    renamed = {k: im for k, im in images.items()}
    for im in renamed.values():
        im.name = f'other_{im.name}'
    write_model(cams, renamed, points, tmp_path / 'renamed')
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match='are not frames of'):
        NGPDataset(scene, downscale=8, sparse_dir=tmp_path / 'renamed')
    cams, images, points = read_model(model)
    moved = next(iter(images.values()))
    moved.tvec = moved.tvec + np.array([0.05, 0.0, 0.0])
    write_model(cams, images, points, tmp_path / 'moved')
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match=moved.name) as err:
        NGPDataset(scene, downscale=8, sparse_dir=tmp_path / 'moved')
    assert 'not made with the poses' in str(err.value)
    assert 'nerfreg-process triangulate' in str(err.value)


def test_cli_refuses_a_foreign_out_folder_and_bad_options(fox12, tmp_path, capsys):
    _, transforms, _, _, _ = fox12
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    with pytest.warns(UserWarning):
        assert main(['triangulate', str(transforms), '--out', str(out), '--quiet']) == 1
    assert 'not an earlier triangulation output' in capsys.readouterr().err
    assert os.listdir(out) == ['notes.txt']
    assert main(['triangulate', str(transforms), '--max-size', '50', '--quiet']) == 1
    assert '--max-size 50 is too small' in capsys.readouterr().err
    assert main(['triangulate', str(tmp_path / 'absent.json'), '--quiet']) == 1
    assert 'file not found' in capsys.readouterr().err

