"""ColmapDataset and the COLMAP reader / writer, on the real "cup" scene and synthetic ones."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from nerfreg.cameras import Cameras
from nerfreg.datasets import ColmapDataset, DatasetError, natural_key
from nerfreg.datasets.base import camera_extent
from nerfreg.datasets.colmap_io import (
    ColmapCamera,
    ColmapImage,
    ColmapPoints,
    read_model,
    write_model,
)
from nerfreg.registry import DATASETS


def all_views(ds) -> Cameras:
    """Cameras of train + test in the model's natural order."""
    cams = Cameras.cat([ds.train.cameras, ds.test.cameras])
    order = sorted(range(len(cams)), key=lambda i: natural_key(cams.names[i]))
    return cams[order]


def reprojection_errors(cams: Cameras, model_dir: Path) -> np.ndarray:
    """Distances between projected sparse points and their recorded 2D keypoints (px)."""
    _, images, points = read_model(model_dir)
    xyz = {int(i): p for i, p in zip(points.ids, points.xyz)}
    by_name = {n: k for k, n in enumerate(cams.names)}
    errs = []
    for im in images.values():
        valid = im.point3D_ids >= 0
        pts = torch.tensor(np.stack([xyz[int(i)] for i in im.point3D_ids[valid]]))
        uv, depth = cams[by_name[im.name]].project(pts.double().float())
        assert bool((depth > 0).all())
        errs.append(np.linalg.norm(uv[0].double().numpy() - im.xys[valid], axis=1))
    return np.concatenate(errs)


# ---------------------------------------------------------------------------------------------
# real data: cup (77 photos, SIMPLE_PINHOLE, one camera per image)
@pytest.mark.shared_data
def test_cup_binary_loads_and_reprojects(cup_root):
    ds = DATASETS.build(dict(type='ColmapDataset', data_root=str(cup_root)))
    assert isinstance(ds, ColmapDataset)
    assert len(ds.train) + len(ds.test) == 77 and len(ds.test) == 10 and len(ds.val) == 0
    assert ds.test.names[:3] == ['1.jpg', '9.jpg', '18.jpg']  # index % 8 == 0, natural order
    assert ds.train.names[:8] == ['2.jpg', '3.jpg', '4.jpg', '5.jpg', '6.jpg', '7.jpg', '8.jpg',
                                  '10.jpg']
    assert all(tuple(im.shape) == (600, 800, 3) and im.dtype == torch.uint8
               for im in ds.train.images)
    assert ds.train.alphas is None
    cams = all_views(ds)
    model_cams, model_images, _ = read_model(cup_root / 'sparse' / '0')
    by_name = {im.name: model_cams[im.camera_id] for im in model_images.values()}
    for i, name in enumerate(cams.names):
        f, cx, cy = by_name[name].params
        assert float(cams.fx[i]) == pytest.approx(f) and float(cams.fy[i]) == pytest.approx(f)
        assert (float(cams.cx[i]), float(cams.cy[i])) == (pytest.approx(cx), pytest.approx(cy))
    assert ds.points.shape == (9262, 3) and ds.points_rgb.shape == (9262, 3)
    assert 0 <= float(ds.points_rgb.min()) and float(ds.points_rgb.max()) <= 1
    # the sparse points land on their recorded keypoints (COLMAP reports 0.59 px mean)
    err = reprojection_errors(cams, cup_root / 'sparse' / '0')
    assert len(err) == 57847
    assert err.mean() < 0.7 and np.median(err) < 0.5, (err.mean(), np.median(err))
    assert np.percentile(err, 90) < 1.4, np.percentile(err, 90)
    # COLMAP's own residuals have a long tail (p95 1.81 px in float64); ours must equal them
    assert np.percentile(err, 95) == pytest.approx(1.8135, abs=0.01)
    # scene normalisation from camera centres (3DGS "cameras extent")
    centers = ds.train.cameras.centers()
    torch.testing.assert_close(ds.scene_center, centers.mean(0), atol=1e-4, rtol=0)
    expected = 1.1 * float((centers - centers.mean(0)).norm(dim=-1).max())
    assert ds.scene_extent == pytest.approx(expected, rel=1e-4)


@pytest.mark.shared_data
def test_cup_projection_matches_pycolmap(cup_root):
    pycolmap = pytest.importorskip('pycolmap')
    rec = pycolmap.Reconstruction(str(cup_root / 'sparse' / '0'))
    cams = all_views(ColmapDataset(cup_root, downscale=8))  # intrinsics / 8, poses unchanged
    by_name = {n: i for i, n in enumerate(cams.names)}
    for image in list(rec.images.values())[::10]:
        seen = [p.point3D_id for p in image.points2D if p.has_point3D()][:30]
        xyz = np.stack([rec.points3D[k].xyz for k in seen])
        ref = np.stack([image.project_point(x) for x in xyz])  # pixels at full resolution
        uv, _ = cams[by_name[image.name]].project(torch.from_numpy(xyz).float())
        np.testing.assert_allclose(uv[0].double().numpy() * 8, ref, atol=0.02)


@pytest.mark.shared_data
def test_cup_text_model_written_by_us_matches_pycolmap(cup_root, tmp_path):
    pycolmap = pytest.importorskip('pycolmap')
    cams, images, points = read_model(cup_root / 'sparse' / '0')
    # binary writer reproduces COLMAP's files byte for byte
    write_model(cams, images, points, tmp_path / 'bin', '.bin')
    for name in ('cameras.bin', 'images.bin', 'points3D.bin'):
        assert filecmp.cmp(tmp_path / 'bin' / name, cup_root / 'sparse' / '0' / name,
                           shallow=False), name
    # text writer: pycolmap reads the same reconstruction
    scene = tmp_path / 'scene'
    write_model(cams, images, points, scene / 'sparse' / '0', '.txt')
    (scene / 'images').symlink_to(cup_root / 'images')
    ref = pycolmap.Reconstruction(str(cup_root / 'sparse' / '0'))
    txt = pycolmap.Reconstruction(str(scene / 'sparse' / '0'))
    assert txt.num_reg_images() == ref.num_reg_images() == 77
    assert txt.num_points3D() == ref.num_points3D()
    for image_id, im in ref.images.items():
        other = txt.images[image_id]
        assert other.name == im.name
        np.testing.assert_allclose(other.cam_from_world().rotation.quat,
                                   im.cam_from_world().rotation.quat, atol=1e-12)
        np.testing.assert_allclose(other.cam_from_world().translation,
                                   im.cam_from_world().translation, atol=1e-12)
        np.testing.assert_allclose(txt.cameras[im.camera_id].params,
                                   ref.cameras[im.camera_id].params, atol=1e-12)
    assert txt.compute_mean_reprojection_error() == pytest.approx(
        ref.compute_mean_reprojection_error(), rel=1e-9)
    # our reader reads what pycolmap 4.x writes (binary with rigs/frames files, and text)
    for ext, write in (('.bin', ref.write_binary), ('.txt', ref.write_text)):
        (tmp_path / f'py{ext}').mkdir()
        write(str(tmp_path / f'py{ext}'))
        _, imgs_py, pts_py = read_model(tmp_path / f'py{ext}', ext)
        np.testing.assert_array_equal(pts_py.xyz, points.xyz)
        assert all(np.array_equal(imgs_py[k].xys, images[k].xys) for k in images)
    # our reader of the text model, and the dataset built from it, match the binary ones
    c2, i2, p2 = read_model(scene / 'sparse' / '0')
    np.testing.assert_array_equal(p2.xyz, points.xyz)
    for k in images:
        np.testing.assert_array_equal(i2[k].qvec, images[k].qvec)
        np.testing.assert_array_equal(i2[k].xys, images[k].xys)
    ds_txt = ColmapDataset(scene, downscale=4)
    ds_bin = ColmapDataset(cup_root, downscale=4)
    assert ds_txt.train.names == ds_bin.train.names
    torch.testing.assert_close(ds_txt.train.cameras.R, ds_bin.train.cameras.R)
    torch.testing.assert_close(ds_txt.train.cameras.Ks(), ds_bin.train.cameras.Ks())
    assert not (cup_root / 'images_4').exists()  # read-only data is never written


@pytest.mark.shared_data
def test_cup_downscale_scales_intrinsics(cup_root):
    full = ColmapDataset(cup_root)
    ds = ColmapDataset(cup_root, downscale=4)
    assert tuple(ds.train.images[0].shape) == (150, 200, 3)
    torch.testing.assert_close(ds.train.cameras.fx, full.train.cameras.fx / 4)
    torch.testing.assert_close(ds.train.cameras.cx, full.train.cameras.cx / 4)
    ref = cv2.resize(full.train.images[3].numpy(), (200, 150), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(ds.train.images[3].numpy(), ref)
    assert ds.scene_extent == pytest.approx(full.scene_extent)


# ---------------------------------------------------------------------------------------------
# synthetic COLMAP scenes
def make_scene(root: Path, n: int = 10, model: str = 'PINHOLE', params_extra=(),
               sizes=((64, 48),), names=None, ext: str = '.bin', seed: int = 0) -> Path:
    """Cameras on a circle looking at random points; images are noise (content unused)."""
    rng = np.random.default_rng(seed)
    names = names or [f'{i}.png' for i in range(n)]
    cams, images = {}, {}
    pts = rng.uniform(-1, 1, size=(50, 3))
    for i, name in enumerate(names):
        w, h = sizes[i % len(sizes)]
        f = 0.8 * w
        if model == 'SIMPLE_PINHOLE':
            params = [f, w / 2, h / 2]
        elif model in ('SIMPLE_RADIAL', 'RADIAL'):
            params = [f, w / 2, h / 2, *params_extra]
        else:
            params = [f, f * 1.01, w / 2 + 0.3, h / 2 - 0.2, *params_extra]
        cams[i + 1] = ColmapCamera(i + 1, model, w, h, np.array(params, dtype=np.float64))
        ang = 2 * np.pi * i / len(names)
        eye = np.array([4 * np.cos(ang), 4 * np.sin(ang), 1.0])
        z = -eye / np.linalg.norm(eye)
        x = np.cross(z, [0, 0, 1.0])
        x /= np.linalg.norm(x)
        rot = np.stack([x, np.cross(z, x), z])  # rows: camera axes in world (OpenCV)
        from nerfreg.cameras import rotmat_to_qvec
        images[i + 1] = ColmapImage(i + 1, rotmat_to_qvec(rot), -rot @ eye, i + 1, name)
        img = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        (root / 'images' / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / 'images' / name), img)
    points = ColmapPoints(np.arange(1, 51), pts, rng.integers(0, 255, (50, 3)).astype(np.uint8),
                          np.zeros(50), [np.zeros((0, 2), np.int32)] * 50)
    write_model(cams, images, points, root / 'sparse' / '0', ext)
    return root


def test_natural_sort_and_holdout(tmp_path):
    names = ['10.png', '2.png', '1.png', '20.png', '3.png', '11.png', '9.png', '4.png',
             '5.png', '6.png']
    make_scene(tmp_path, names=names)
    ds = ColmapDataset(tmp_path, holdout_every=4)
    order = sorted(names, key=natural_key)
    assert order[:4] == ['1.png', '2.png', '3.png', '4.png'] and order[-1] == '20.png'
    assert ds.test.names == [order[0], order[4], order[8]]
    assert ds.train.names == [n for i, n in enumerate(order) if i % 4]
    ds_all = ColmapDataset(tmp_path, holdout_every=0)
    assert len(ds_all.train) == 10 and len(ds_all.test) == 0


def test_text_and_binary_synthetic_agree(tmp_path):
    a = make_scene(tmp_path / 'a', ext='.bin')
    b = make_scene(tmp_path / 'b', ext='.txt')
    da, db = ColmapDataset(a), ColmapDataset(b)
    torch.testing.assert_close(da.train.cameras.viewmats(), db.train.cameras.viewmats())
    torch.testing.assert_close(da.points, db.points)


def test_mixed_sizes_and_per_image_cameras(tmp_path):
    make_scene(tmp_path, n=9, sizes=((64, 48), (40, 30), (48, 64)), model='SIMPLE_PINHOLE')
    ds = ColmapDataset(tmp_path, holdout_every=0)
    sizes = {tuple(im.shape[:2]) for im in ds.train.images}
    assert sizes == {(48, 64), (30, 40), (64, 48)}
    for cam_w, im in zip(ds.train.cameras.width, ds.train.images):
        assert int(cam_w) == im.shape[1]


def files_of(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes): detects any write to the folder."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
            if p.is_file()}


def test_downscale_cached_outside_the_data(tmp_path, monkeypatch):
    scene = make_scene(tmp_path / 'scene', n=4, sizes=((64, 48),))
    monkeypatch.setenv('NERFREG_CACHE_DIR', str(tmp_path / 'cache'))
    before = files_of(scene)
    ds = ColmapDataset(scene, downscale=2, holdout_every=0)
    assert tuple(ds.train.images[0].shape) == (24, 32, 3)
    assert files_of(scene) == before  # nothing written beside the data
    assert ds.image_cache.stats() == dict(hits=0, misses=4, writes=4)
    assert len(list((tmp_path / 'cache' / 'images').rglob('*.npy'))) == 4
    ref = cv2.cvtColor(cv2.imread(str(scene / 'images' / '1.png')), cv2.COLOR_BGR2RGB)
    ref = cv2.resize(ref, (32, 24), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(ds.train.images[1].numpy(), ref)  # exact INTER_AREA
    again = ColmapDataset(scene, downscale=2, holdout_every=0)
    assert again.image_cache.stats() == dict(hits=4, misses=0, writes=0)
    assert torch.equal(again.train.images[1], ds.train.images[1])
    # an edited photo gets a new entry (the key holds its size and modification time)
    cv2.imwrite(str(scene / 'images' / '1.png'), np.zeros((48, 64, 3), np.uint8))
    edited = ColmapDataset(scene, downscale=2, holdout_every=0)
    assert edited.image_cache.stats()['hits'] == 3 and int(edited.train.images[1].max()) == 0
    # explicit cache_dir beats the environment; cache=False keeps nothing
    other = ColmapDataset(scene, downscale=2, holdout_every=0, cache_dir=tmp_path / 'c2')
    assert other.image_cache.writes == 4 and (tmp_path / 'c2' / 'images').is_dir()
    off = ColmapDataset(scene, downscale=2, holdout_every=0, cache=False,
                        cache_dir=tmp_path / 'c3')
    assert off.image_cache.writes == 0 and not (tmp_path / 'c3').exists()
    ds15 = ColmapDataset(scene, downscale=1.5, holdout_every=0)
    assert tuple(ds15.train.images[0].shape) == (32, 43, 3)


def test_damaged_cache_entry_is_recomputed(tmp_path, monkeypatch):
    scene = make_scene(tmp_path / 'scene', n=2)
    monkeypatch.setenv('NERFREG_CACHE_DIR', str(tmp_path / 'cache'))
    ds = ColmapDataset(scene, downscale=2, holdout_every=0)
    for entry in (tmp_path / 'cache').rglob('*.npy'):
        entry.write_bytes(entry.read_bytes()[:40])  # truncated (e.g. a full disk)
    again = ColmapDataset(scene, downscale=2, holdout_every=0)
    assert again.image_cache.stats() == dict(hits=0, misses=2, writes=2)
    assert torch.equal(again.train.images[0], ds.train.images[0])


def test_prescaled_folder_used_only_when_asked(tmp_path):
    scene = make_scene(tmp_path, n=4, sizes=((64, 48),))
    (scene / 'images_2').mkdir()
    for i in range(4):  # the user's own (here: constant) half-size images
        cv2.imwrite(str(scene / 'images_2' / f'{i}.png'), np.full((24, 32, 3), 7, np.uint8))
    ds = ColmapDataset(scene, downscale=2, holdout_every=0)
    assert int(ds.train.images[0].max()) > 7  # resized from the originals
    pre = ColmapDataset(scene, downscale=2, holdout_every=0, use_prescaled_images=True)
    assert int(pre.train.images[0].min()) == int(pre.train.images[0].max()) == 7
    shutil.move(scene / 'images', scene / 'originals')  # images_2 alone suffices, if asked
    only = ColmapDataset(scene, downscale=2, holdout_every=0, use_prescaled_images=True)
    assert torch.equal(only.train.images[1], pre.train.images[1])
    with pytest.raises(DatasetError, match='does not exist'):
        ColmapDataset(scene, downscale=2, holdout_every=0)


def test_val_split_is_carved_from_training_views(tmp_path):
    scene = make_scene(tmp_path, n=20)
    ds = ColmapDataset(scene, holdout_every=4, val_every=3)
    names = sorted((f'{i}.png' for i in range(20)), key=natural_key)
    assert ds.test.names == names[::4]
    others = [n for n in names if n not in ds.test.names]
    assert ds.val.names == others[::3]
    assert not set(ds.val.names) & set(ds.train.names)
    assert not set(ds.val.names) & set(ds.test.names)
    assert sorted(ds.train.names + ds.val.names + ds.test.names, key=natural_key) == names
    assert len(ColmapDataset(scene, holdout_every=4).val) == 0  # val_every=0: no val
    assert ColmapDataset(scene, holdout_every=4, val='test').val.names == ds.test.names
    with pytest.raises(DatasetError, match="val_every=3 .*val='test'"):
        ColmapDataset(scene, holdout_every=4, val_every=3, val='test')
    with pytest.raises(DatasetError, match='leaves no training views'):
        ColmapDataset(scene, holdout_every=4, val_every=1)


@pytest.mark.parametrize('model,extra', [
    ('SIMPLE_RADIAL', [-0.1]), ('RADIAL', [-0.1, 0.02]),
    ('OPENCV', [-0.1, 0.02, 0.001, -0.001]), ('OPENCV_FISHEYE', [0.02, -0.01, 0.0, 0.0]),
    ('FULL_OPENCV', [-0.1, 0.02, 0.001, -0.001, 0.0, 0.0, 0.0, 0.0])])
def test_distorted_models_are_undistorted(tmp_path, model, extra):
    make_scene(tmp_path, n=3, model=model, params_extra=extra)
    ds = ColmapDataset(tmp_path, holdout_every=0)
    cams = ds.train.cameras
    assert cams.dist is None and tuple(ds.train.images[0].shape) == (48, 64, 3)
    assert 0.9 * 51.2 < float(cams.fx[0]) < 1.2 * 51.2
    assert not (tmp_path / '.nerfreg_cache').exists() and ds.image_cache.writes == 3
    again = ColmapDataset(tmp_path, holdout_every=0)
    assert again.image_cache.stats() == dict(hits=3, misses=0, writes=0)
    assert torch.equal(again.train.images[0], ds.train.images[0])  # lossless cache


def test_unsupported_model_names_model_and_supported(tmp_path):
    make_scene(tmp_path, n=2, model='FOV', params_extra=[0.9])
    with pytest.raises(DatasetError, match=r'FOV.*SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL'):
        ColmapDataset(tmp_path)


def test_auto_orient_and_scale_preserve_projections(tmp_path):
    make_scene(tmp_path, n=8)
    ds = ColmapDataset(tmp_path, holdout_every=0)
    dn = ColmapDataset(tmp_path, holdout_every=0, auto_orient=True, auto_scale=True)
    uv, _ = ds.train.cameras.project(ds.points)
    uv2, _ = dn.train.cameras.project(dn.points)
    torch.testing.assert_close(uv2, uv, atol=1e-3, rtol=1e-4)
    assert float(dn.train.cameras.centers().abs().max()) == pytest.approx(1.0, abs=1e-5)
    up = -dn.train.cameras.R[:, 1, :].mean(0)
    assert float(up[2] / up.norm()) > 0.999


def test_missing_image_in_model_is_an_error(tmp_path):
    make_scene(tmp_path, n=3)
    (tmp_path / 'images' / '1.png').unlink()
    with pytest.raises(DatasetError, match=r'1\.png'):
        ColmapDataset(tmp_path)


def test_images_outside_the_model_are_ignored(tmp_path):
    make_scene(tmp_path, n=3)
    shutil.copy(tmp_path / 'images' / '0.png', tmp_path / 'images' / 'extra.png')
    ds = ColmapDataset(tmp_path, holdout_every=0)
    assert sorted(ds.train.names) == ['0.png', '1.png', '2.png']


def _tripod(n: int, center=(1.0, 2.0, 3.0)) -> Cameras:
    """n cameras turned about one centre (a tripod pan)."""
    c2w = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        a = 2 * np.pi * i / max(n, 1)
        c2w[i, :3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        c2w[i, :3, 3] = center
    return Cameras.from_opengl_c2w(c2w, 50.0, 50.0, 32.0, 24.0, 64, 48)


def test_scene_extent_falls_back_when_camera_centres_coincide(tmp_path):
    from mmengine.logging import MMLogger
    # spread cameras: 3DGS' 1.1 x largest distance to the mean centre, points ignored
    ring = _tripod(4)
    ring.t = ring.t + torch.tensor([[3.0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    centers = ring.centers().double()
    expected = 1.1 * float((centers - centers.mean(0)).norm(dim=-1).max())
    assert camera_extent(ring, torch.zeros(5, 3))[1] == pytest.approx(expected, rel=1e-5)
    # a tripod pan (or one view): 1.1 x the median depth of the sparse points, not ~0,
    # and the run log says so
    log_file = tmp_path / 'run.log'
    logger = MMLogger.get_instance(f'extent_{tmp_path.name}', log_file=str(log_file))
    pts = torch.tensor([1.0, 2.0, 3.0]) + torch.tensor(
        [[5.0, 0, 0], [0, 7.0, 0], [0, 0, 9.0], [0, 0, -100.0], [200.0, 0, 0]])
    for n in (1, 3):
        center, extent = camera_extent(_tripod(n), pts)
        torch.testing.assert_close(center, torch.tensor([1.0, 2.0, 3.0]))
        assert extent == pytest.approx(1.1 * 9.0, rel=1e-5)
    # no points: a unit extent
    assert camera_extent(_tripod(2))[1] == pytest.approx(1.1)
    for handler in logger.handlers:
        handler.flush()
    assert log_file.read_text().count('share one centre') == 3
