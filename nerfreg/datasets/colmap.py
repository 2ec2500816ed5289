"""``ColmapDataset``: photos with a COLMAP sparse model (``sparse/0``, binary or text)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from mmengine.logging import print_log

from nerfreg.cameras import Cameras
from nerfreg.registry import DATASETS

from .base import (
    BackgroundLike,
    BaseSceneDataset,
    DatasetError,
    natural_key,
    orient_and_scale,
    parse_background,
)
from .colmap_io import ColmapCamera, ColmapFormatError, read_model
from .image_io import load_views, scale_tag

#: Models used as they are (pinhole).
PINHOLE_MODELS = ('SIMPLE_PINHOLE', 'PINHOLE')
#: Models whose images and intrinsics are undistorted with OpenCV at load time.
UNDISTORTED_MODELS = ('SIMPLE_RADIAL', 'RADIAL', 'OPENCV', 'FULL_OPENCV', 'OPENCV_FISHEYE')
SUPPORTED_MODELS = PINHOLE_MODELS + UNDISTORTED_MODELS


def colmap_intrinsics(cam: ColmapCamera, source: Path | str = '') -> tuple[
        float, float, float, float, np.ndarray, bool]:
    """(fx, fy, cx, cy, OpenCV dist [k], is_fisheye) of a COLMAP camera."""
    p = np.asarray(cam.params, dtype=np.float64)
    zero4 = np.zeros(4)
    if cam.model == 'SIMPLE_PINHOLE':
        return p[0], p[0], p[1], p[2], zero4, False
    if cam.model == 'PINHOLE':
        return p[0], p[1], p[2], p[3], zero4, False
    if cam.model == 'SIMPLE_RADIAL':
        return p[0], p[0], p[1], p[2], np.array([p[3], 0, 0, 0]), False
    if cam.model == 'RADIAL':
        return p[0], p[0], p[1], p[2], np.array([p[3], p[4], 0, 0]), False
    if cam.model == 'OPENCV':
        return p[0], p[1], p[2], p[3], p[4:8].copy(), False
    if cam.model == 'FULL_OPENCV':  # k1 k2 p1 p2 k3 k4 k5 k6 is OpenCV's rational model order
        return p[0], p[1], p[2], p[3], p[4:12].copy(), False
    if cam.model == 'OPENCV_FISHEYE':  # k1 k2 k3 k4 of cv2.fisheye
        return p[0], p[1], p[2], p[3], p[4:8].copy(), True
    raise DatasetError(
        f'{source}: camera {cam.id} uses the COLMAP model {cam.model}, which nerfreg does not '
        f'support. Supported models: {", ".join(SUPPORTED_MODELS)}. Re-run COLMAP\'s '
        'image_undistorter (or choose one of these models).')


@DATASETS.register_module()
class ColmapDataset(BaseSceneDataset):
    """A COLMAP scene: ``<data_root>/images/`` and ``<data_root>/sparse/0/``.

    Args:
        data_root: scene folder.
        images_dir: image folder under ``data_root``; ``<images_dir>_<downscale>`` is used
            when it exists (e.g. ``images_4``), else resized copies are made (cached there
            when ``data_root`` is writable).
        sparse_dir: model folder (``sparse/0``; ``sparse`` is tried if that is absent).
        downscale: image downscale factor (int or float).
        holdout_every: every n-th view (index % n == 0 after natural sort) is test; 0: none.
        val: 'test' (val = test, default), 'train' or 'none' (empty).
        background: colour used to render empty space ('black', 'white' or [r, g, b]).
        auto_orient / auto_scale: rotate the world so the mean camera up is +z / centre it and
            scale camera centres into [-1, 1] (off by default: the COLMAP frame is kept).
        max_points: keep at most this many sparse points (random, seeded); None keeps all.
    """

    def __init__(self, data_root: str | Path, images_dir: str = 'images',
                 sparse_dir: str = 'sparse/0', downscale: float = 1, holdout_every: int = 8,
                 val: str = 'test', background: BackgroundLike = 'black',
                 auto_orient: bool = False, auto_scale: bool = False,
                 max_points: int | None = None, cache: bool = True) -> None:
        t0 = time.perf_counter()
        root = self.check_root(data_root, 'ColmapDataset')
        self.data_root, self.downscale = root, float(downscale)
        self.background = parse_background(background)
        sparse = root / sparse_dir
        if not sparse.is_dir() and (root / 'sparse').is_dir() and sparse_dir == 'sparse/0':
            sparse = root / 'sparse'
        if not sparse.is_dir():
            raise DatasetError(f'ColmapDataset: sparse model folder {sparse} does not exist '
                               f'(expected COLMAP cameras/images/points3D .bin or .txt)')
        try:
            cams, images, points = read_model(sparse)
        except ColmapFormatError as e:
            raise DatasetError(f'ColmapDataset: {e}') from e
        if not images:
            raise DatasetError(f'ColmapDataset: {sparse} has zero registered images')
        entries = sorted(images.values(), key=lambda im: natural_key(im.name))
        folders = [root / images_dir]
        if self.downscale != 1:  # a pre-made <images_dir>_<factor> folder suffices
            folders.insert(0, root / f'{images_dir}_{scale_tag(self.downscale)}')
        if not any(f.is_dir() for f in folders):
            raise DatasetError(f'ColmapDataset: image folder {root / images_dir} does not exist')
        missing = [im.name for im in entries
                   if not any((f / im.name).is_file() for f in folders)]
        if missing:
            raise DatasetError(f'ColmapDataset: {len(missing)} image(s) of the model are missing '
                               f'in {root / images_dir}: {missing[:5]}')
        intr = {}
        for im in entries:
            if im.camera_id not in cams:
                raise DatasetError(f'ColmapDataset: {sparse}: image {im.name} refers to camera '
                                   f'{im.camera_id}, which is not in the model')
            cam = cams[im.camera_id]
            if cam.id not in intr:
                intr[cam.id] = colmap_intrinsics(cam, sparse)
        rows = [intr[im.camera_id] for im in entries]
        kmax = max(len(r[4]) for r in rows)
        dist = np.stack([np.pad(r[4], (0, kmax - len(r[4]))) for r in rows])
        cameras = Cameras.from_colmap(
            np.stack([im.qvec for im in entries]), np.stack([im.tvec for im in entries]),
            fx=[r[0] for r in rows], fy=[r[1] for r in rows], cx=[r[2] for r in rows],
            cy=[r[3] for r in rows], width=[cams[im.camera_id].width for im in entries],
            height=[cams[im.camera_id].height for im in entries],
            dist=torch.from_numpy(dist) if np.any(dist) else None,
            names=[im.name for im in entries])

        pts = torch.from_numpy(points.xyz).float() if len(points) else None
        rgb = torch.from_numpy(points.rgb).float() / 255.0 if len(points) else None
        if pts is not None and max_points is not None and len(pts) > max_points:
            keep = torch.randperm(len(pts), generator=torch.Generator().manual_seed(0))
            keep = keep[:max_points].sort().values
            pts, rgb = pts[keep], rgb[keep]
        cameras, pts, self.world_transform = orient_and_scale(cameras, pts, auto_orient,
                                                              auto_scale)
        self.points, self.points_rgb = pts, rgb

        names = [im.name for im in entries]
        cameras, imgs, alphas = load_views(root, images_dir, names, cameras, self.downscale,
                                           fisheye=[r[5] for r in rows], cache=cache)
        self.build_splits(cameras, imgs, alphas, names, holdout_every, val)
        self._set_normalisation()
        mb = (self.train.nbytes() + self.test.nbytes()) / 2**20
        print_log(f'ColmapDataset {root}: {len(names)} images ({len(self.train)} train, '
                  f'{len(self.test)} test), {0 if pts is None else len(pts)} points, '
                  f'{mb:.1f} MiB of uint8 images, loaded in {time.perf_counter() - t0:.1f} s',
                  logger='current')
