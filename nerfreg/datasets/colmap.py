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
from .cache import ImageCache
from .colmap_io import ColmapCamera
from .image_io import load_views, scale_tag
from .masks import find_mask, load_mask
from .sparse_points import observed_points, read_sparse_model, sparse_points

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
        images_dir: image folder under ``data_root``.
        sparse_dir: model folder (``sparse/0``; ``sparse`` is tried if that is absent).
        downscale: image downscale factor (int or float): an INTER_AREA resize of the
            originals, cached in ``cache_dir`` (the data folder is never written).
        use_prescaled_images: read a pre-made ``<images_dir>_<downscale>`` folder (e.g.
            COLMAP's ``images_4``) instead of resizing the originals, where it has the image.
        holdout_every: every n-th view (index % n == 0 after natural sort) is test; 0: none.
        val_every: every n-th of the other views is held out of training as val (disjoint
            from test, for validation and tuning); 0: none.
        val: with ``val_every=0``: 'auto' / 'none' (val empty), 'test' or 'train' (see
            ``BaseSceneDataset.build_splits``).
        background: colour used to render empty space ('black', 'white' or [r, g, b]).
        auto_orient / auto_scale: rotate the world so the mean camera up is +z / centre it and
            scale camera centres into [-1, 1] (off by default: the COLMAP frame is kept).
        max_points: keep at most this many sparse points (random, seeded); None keeps all.
        cache: keep derived (downscaled / undistorted) images in the cache.
        cache_dir: cache root (default ``$NERFREG_CACHE_DIR`` or ``~/.cache/nerfreg``).
        masks_dir: folder under ``data_root`` with a loss mask per image (same file name,
            any common image extension; 0 = ignore the pixel), see ``datasets/masks.py``.
    """

    def __init__(self, data_root: str | Path, images_dir: str = 'images',
                 sparse_dir: str = 'sparse/0', downscale: float = 1, holdout_every: int = 8,
                 val_every: int = 0, val: str = 'auto', background: BackgroundLike = 'black',
                 auto_orient: bool = False, auto_scale: bool = False,
                 max_points: int | None = None, cache: bool = True,
                 cache_dir: str | Path | None = None,
                 use_prescaled_images: bool = False, masks_dir: str | None = None) -> None:
        t0 = time.perf_counter()
        root = self.check_root(data_root, 'ColmapDataset')
        self.data_root, self.downscale = root, float(downscale)
        self.background = parse_background(background)
        sparse = root / sparse_dir
        if not sparse.is_dir() and (root / 'sparse').is_dir() and sparse_dir == 'sparse/0':
            sparse = root / 'sparse'
        cams, images, points = read_sparse_model(sparse, 'ColmapDataset')
        if not images:
            raise DatasetError(f'ColmapDataset: {sparse} has zero registered images')
        entries = sorted(images.values(), key=lambda im: natural_key(im.name))
        folders = [root / images_dir]
        if self.downscale != 1 and use_prescaled_images:  # a pre-made folder suffices
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

        pts, rgb = sparse_points(points, max_points)
        cameras, pts, self.world_transform = orient_and_scale(cameras, pts, auto_orient,
                                                              auto_scale)
        self.points, self.points_rgb = pts, rgb

        names = [im.name for im in entries]
        self.image_cache = ImageCache(cache_dir, enabled=cache)
        cameras, imgs, alphas = load_views(root, images_dir, names, cameras, self.downscale,
                                           fisheye=[r[5] for r in rows], cache=self.image_cache,
                                           prescaled=use_prescaled_images)
        masks = None
        if masks_dir:
            if any(np.any(r[4] != 0) for r in rows):
                raise DatasetError(f'ColmapDataset: masks_dir={masks_dir!r} with distorted '
                                   'cameras is not supported (undistort the scene first)')
            folder = root / masks_dir
            if not folder.is_dir():
                raise DatasetError(f'ColmapDataset: masks_dir {folder} does not exist')
            masks = [load_mask(find_mask(folder, name), root / images_dir / name,
                               (int(cams[im.camera_id].width), int(cams[im.camera_id].height)),
                               (im_arr.shape[1], im_arr.shape[0]))
                     for name, im, im_arr in zip(names, entries, imgs)]
        self.observed_points = observed_points(entries, points, self.world_transform)
        self.build_splits(cameras, imgs, alphas, names, holdout_every, val, val_every, masks)
        self._set_normalisation()
        mb = sum(s.nbytes() for s in {id(s): s for s in (self.train, self.val, self.test)}
                 .values()) / 2**20
        print_log(f'ColmapDataset {root}: {len(names)} images ({self.split_summary()}), '
                  f'{0 if pts is None else len(pts)} points, {mb:.1f} MiB of uint8 images, '
                  f'loaded in {time.perf_counter() - t0:.1f} s{self.cache_summary()}',
                  logger='current')
