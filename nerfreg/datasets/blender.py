"""``BlenderDataset``: NeRF-synthetic layout (``transforms_{train,val,test}.json``, RGBA PNGs)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
from mmengine.logging import print_log

from nerfreg.cameras import Cameras
from nerfreg.registry import DATASETS

from .base import BackgroundLike, BaseSceneDataset, DatasetError, make_split, parse_background
from .cache import ImageCache
from .image_io import IMAGE_EXTS, composite, load_downscaled


def resolve_frame_file(root: Path, file_path: str) -> Path | None:
    """Image of a frame's ``file_path`` (relative to ``root``; the extension may be missing)."""
    # normpath, not resolve(): a data root reached through a symlink must stay the prefix
    path = Path(os.path.normpath(root / file_path))
    if path.is_file():
        return path
    for ext in IMAGE_EXTS:
        cand = path.with_name(path.name + ext)
        if cand.is_file():
            return cand
    return None


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f'{path}: file not found')
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f'{path}: invalid JSON ({e})') from e
    if not isinstance(meta, dict) or not isinstance(meta.get('frames'), list):
        raise DatasetError(f'{path}: expected an object with a "frames" list')
    return meta


def frame_c2w(frame: dict, path: Path, i: int) -> np.ndarray:
    """A frame's 4x4 ``transform_matrix`` (OpenGL camera-to-world), validated."""
    try:
        c2w = np.asarray(frame['transform_matrix'], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(f'{path}: frame {i} has no valid "transform_matrix"') from e
    if c2w.shape == (3, 4):
        c2w = np.vstack([c2w, [0, 0, 0, 1]])
    if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)):
        raise DatasetError(f'{path}: frame {i} "transform_matrix" must be a finite 4x4 matrix')
    return c2w


@DATASETS.register_module()
class BlenderDataset(BaseSceneDataset):
    """Object-centric synthetic scene in the NeRF "Blender" format.

    Intrinsics come from ``camera_angle_x`` (and ``camera_angle_y`` if present) and the size of
    the images actually on disk, so images resized after the JSON was written still fit.
    RGBA images are composited on ``background``; their alpha is kept in ``alphas``.

    Args:
        data_root: folder with ``transforms_{train,val,test}.json``.
        downscale: image downscale factor (int or float): an INTER_AREA resize of the
            originals, cached in ``cache_dir`` (the data folder is never written).
        background: 'white' (default), 'black' or [r, g, b] in 0..1.
        cache / cache_dir / use_prescaled_images: as for ``ColmapDataset`` (a pre-made
            ``<split>_<factor>/`` folder is read only with ``use_prescaled_images=True``).
        alpha_mask: use each image's alpha as its loss mask too (transparent pixels leave
            the loss instead of being fitted to the background).

    A missing val JSON makes val = test (and a missing test JSON, test = val).
    """

    def __init__(self, data_root: str | Path, downscale: float = 1,
                 background: BackgroundLike = 'white', cache: bool = True,
                 cache_dir: str | Path | None = None,
                 use_prescaled_images: bool = False, alpha_mask: bool = False) -> None:
        t0 = time.perf_counter()
        root = self.check_root(data_root, type(self).__name__)
        self._alpha_mask = bool(alpha_mask)
        self.data_root, self.downscale = root, float(downscale)
        self.background = parse_background(background)
        bg = self.background.numpy()
        self.image_cache = ImageCache(cache_dir, enabled=cache)
        self._prescaled = bool(use_prescaled_images)
        if not (root / 'transforms_train.json').is_file():
            raise DatasetError(f'{type(self).__name__}: {root / "transforms_train.json"} not found')
        loaded = {}
        for split in ('train', 'val', 'test'):
            path = root / f'transforms_{split}.json'
            if split != 'train' and not path.is_file():
                continue
            loaded[split] = self._load_split(root, path, bg)
        if 'test' not in loaded:
            loaded['test'] = loaded['val'] if 'val' in loaded else make_split(
                loaded['train'].cameras, [], [], [], [])
        loaded.setdefault('val', loaded['test'])
        self.train, self.val, self.test = loaded['train'], loaded['val'], loaded['test']
        self.points, self.points_rgb = None, None
        self._set_normalisation()
        print_log(f'{type(self).__name__} {root}: {len(self.train)}/{len(self.val)}/'
                  f'{len(self.test)} train/val/test views in {time.perf_counter() - t0:.1f} s'
                  f'{self.cache_summary()}', logger='current')

    def _load_split(self, root: Path, path: Path, bg: np.ndarray):
        meta = read_json(path)
        frames = meta['frames']
        if not frames:
            raise DatasetError(f'{path}: "frames" is empty')
        if 'camera_angle_x' not in meta and 'fl_x' not in meta:
            raise DatasetError(f'{path}: needs "camera_angle_x" (or "fl_x")')
        c2ws, names, imgs, alphas, intr = [], [], [], [], []
        for i, frame in enumerate(frames):
            if not isinstance(frame, dict) or 'file_path' not in frame:
                raise DatasetError(f'{path}: frame {i} has no "file_path"')
            c2ws.append(frame_c2w(frame, path, i))
            file = resolve_frame_file(root, frame['file_path'])
            if file is None:
                raise DatasetError(f'{path}: frame {i}: image {root / frame["file_path"]} '
                                   'not found')
            rel = file.relative_to(file.parent.parent)
            rgb, alpha = load_downscaled(file.parent.parent, str(rel.parent), rel.name,
                                         self.downscale, self.image_cache, self._prescaled)
            h, w = rgb.shape[:2]
            if 'camera_angle_x' in meta:
                fx = 0.5 * w / math.tan(0.5 * float(meta['camera_angle_x']))
                fy = (0.5 * h / math.tan(0.5 * float(meta['camera_angle_y']))
                      if 'camera_angle_y' in meta else fx)
                cx, cy = 0.5 * w, 0.5 * h
            else:  # explicit pixels at the declared size w, h
                sx, sy = w / float(meta.get('w', w)), h / float(meta.get('h', h))
                fx = float(meta['fl_x']) * sx
                fy = float(meta.get('fl_y', meta['fl_x'])) * sy
                cx = float(meta.get('cx', w / sx / 2)) * sx
                cy = float(meta.get('cy', h / sy / 2)) * sy
            intr.append((fx, fy, cx, cy, w, h))
            imgs.append(composite(rgb, alpha, bg))
            alphas.append(alpha)
            names.append(str(Path(frame['file_path']).with_suffix('').as_posix()))
        ia = np.array(intr, dtype=np.float64)
        cams = Cameras.from_opengl_c2w(np.stack(c2ws), fx=ia[:, 0], fy=ia[:, 1], cx=ia[:, 2],
                                       cy=ia[:, 3], width=ia[:, 4], height=ia[:, 5], names=names)
        masks = None
        if self._alpha_mask:
            masks = [a if a is not None else np.full(im.shape[:2] + (1,), 255, np.uint8)
                     for im, a in zip(imgs, alphas)]
        return make_split(cams, imgs, alphas, names, range(len(names)), masks)
