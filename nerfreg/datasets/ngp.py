"""``NGPDataset``: instant-ngp / nerfstudio ``transforms.json`` scenes (photos + OpenGL poses)."""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.logging import print_log

from nerfreg.cameras import Cameras
from nerfreg.registry import DATASETS

from .base import BackgroundLike, BaseSceneDataset, DatasetError, natural_key, parse_background
from .blender import frame_c2w, read_json, resolve_frame_file
from .cache import ImageCache
from .image_io import composite, load_views, read_image
from .masks import load_mask

_INTR_KEYS = ('fl_x', 'fl_y', 'cx', 'cy', 'w', 'h', 'camera_angle_x', 'camera_angle_y', 'k1',
              'k2', 'k3', 'k4', 'p1', 'p2', 'camera_model', 'is_fisheye')



def _rel(file: Path, root: Path) -> str:
    """``file`` relative to ``root``, lexically (symlinked data roots keep working)."""
    return Path(os.path.relpath(file, root)).as_posix()


@DATASETS.register_module()
class NGPDataset(BaseSceneDataset):
    """Scene described by one ``transforms.json`` (instant-ngp ``colmap2nerf.py`` / nerfstudio).

    Intrinsics (``fl_x fl_y cx cy w h``, or ``camera_angle_x[_y]``) are global or per frame;
    OpenCV distortion ``k1 k2 [k3] p1 p2`` (or fisheye ``k1..k4`` with
    ``camera_model='OPENCV_FISHEYE'``) is removed by undistorting the images. Frames whose
    image is missing are skipped with one warning. Every ``holdout_every``-th frame (natural
    order of ``file_path``) is test; every ``val_every``-th of the others is val (0: none).
    ``downscale``, ``use_prescaled_images``, ``val``, ``cache`` and ``cache_dir`` are as for
    ``ColmapDataset``: derived images go to the cache, never into the data folder.
    """

    def __init__(self, data_root: str | Path, transforms: str = 'transforms.json',
                 downscale: float = 1, holdout_every: int = 8, val_every: int = 0,
                 val: str = 'auto', background: BackgroundLike = 'white', cache: bool = True,
                 cache_dir: str | Path | None = None,
                 use_prescaled_images: bool = False) -> None:
        t0 = time.perf_counter()
        root = self.check_root(data_root, 'NGPDataset')
        path = root / transforms
        meta = read_json(path)
        self.data_root, self.downscale = root, float(downscale)
        self.background = parse_background(background)
        self.aabb_scale = float(meta.get('aabb_scale', 1))

        frames, missing = [], []
        for i, frame in enumerate(meta['frames']):
            if not isinstance(frame, dict) or 'file_path' not in frame:
                raise DatasetError(f'{path}: frame {i} has no "file_path"')
            file = resolve_frame_file(path.parent, str(frame['file_path']))
            if file is None:
                missing.append(str(frame['file_path']))
                continue
            frames.append((file, frame, frame_c2w(frame, path, i)))
        if missing:
            warnings.warn(f'{path}: skipped {len(missing)} of {len(meta["frames"])} frames whose '
                          f'image file is missing (e.g. {missing[0]})', UserWarning, stacklevel=2)
        if not frames:
            raise DatasetError(f'{path}: none of the {len(meta["frames"])} frames has an '
                               'existing image file')
        frames.sort(key=lambda f: natural_key(_rel(f[0], path.parent)))

        rows = [self._intrinsics(meta, fr, file, path) for file, fr, _ in frames]
        kmax = max(len(r['dist']) for r in rows)
        dist = np.stack([np.pad(r['dist'], (0, kmax - len(r['dist']))) for r in rows])
        parents = {f[0].parent for f in frames}
        if len(parents) == 1:
            image_dir = _rel(parents.pop(), path.parent)
            names = [f[0].name for f in frames]
        else:
            image_dir, names = '.', [_rel(f[0], path.parent) for f in frames]
        cameras = Cameras.from_opengl_c2w(
            np.stack([f[2] for f in frames]), fx=[r['fx'] for r in rows],
            fy=[r['fy'] for r in rows], cx=[r['cx'] for r in rows], cy=[r['cy'] for r in rows],
            width=[r['w'] for r in rows], height=[r['h'] for r in rows],
            dist=torch.from_numpy(dist) if np.any(dist) else None, names=names)
        self.image_cache = ImageCache(cache_dir, enabled=cache)
        cameras, imgs, alphas = load_views(path.parent, image_dir, names, cameras, self.downscale,
                                           fisheye=[r['fisheye'] for r in rows],
                                           cache=self.image_cache, prescaled=use_prescaled_images)
        bg = self.background.numpy()
        imgs = [composite(im, a, bg) for im, a in zip(imgs, alphas)]
        masks = None
        if any('mask_path' in fr for _, fr, _ in frames):  # nerfstudio's per-frame loss masks
            if dist.any():
                raise DatasetError(f'{path}: mask_path with distorted cameras is not supported '
                                   '(undistort the frames first)')
            masks = []
            for (file, fr, _), im, row in zip(frames, imgs, rows):
                mask_file = resolve_frame_file(path.parent, str(fr.get('mask_path', '')))
                if 'mask_path' not in fr or mask_file is None:
                    raise DatasetError(f'{path}: frame {file.name} has no readable mask_path '
                                       f'({fr.get("mask_path")!r}); give every frame one')
                masks.append(load_mask(mask_file, file, (int(row['w']), int(row['h'])),
                                       (im.shape[1], im.shape[0])))
        self.build_splits(cameras, imgs, alphas, names, holdout_every, val, val_every, masks)
        self.points, self.points_rgb = None, None
        self._set_normalisation()
        print_log(f'NGPDataset {path}: {len(frames)} of {len(meta["frames"])} frames '
                  f'({self.split_summary()}), loaded in {time.perf_counter() - t0:.1f} s'
                  f'{self.cache_summary()}', logger='current')

    @staticmethod
    def _intrinsics(meta: dict, frame: dict, file: Path, path: Path) -> dict[str, Any]:
        """Intrinsics of one frame (frame keys override the global ones), at size w x h."""
        src = {k: meta[k] for k in _INTR_KEYS if k in meta}
        src.update({k: frame[k] for k in _INTR_KEYS if k in frame})
        try:
            if 'w' in src and 'h' in src:
                w, h = int(round(float(src['w']))), int(round(float(src['h'])))
            else:  # no declared size: the image defines it
                h, w = read_image(file)[0].shape[:2]
            if 'fl_x' in src:
                fx = float(src['fl_x'])
            elif 'camera_angle_x' in src:
                fx = 0.5 * w / math.tan(0.5 * float(src['camera_angle_x']))
            else:
                raise DatasetError(f'{path}: frame {file.name} has neither "fl_x" nor '
                                   '"camera_angle_x"')
            if 'fl_y' in src:
                fy = float(src['fl_y'])
            elif 'camera_angle_y' in src:
                fy = 0.5 * h / math.tan(0.5 * float(src['camera_angle_y']))
            else:
                fy = fx
            cx, cy = float(src.get('cx', w / 2)), float(src.get('cy', h / 2))
            fisheye = bool(src.get('is_fisheye', False)) or src.get('camera_model') in (
                'OPENCV_FISHEYE', 'FISHEYE')
            if fisheye:
                dist = np.array([float(src.get(k, 0.0)) for k in ('k1', 'k2', 'k3', 'k4')])
            else:
                dist = np.array([float(src.get(k, 0.0)) for k in ('k1', 'k2', 'p1', 'p2')])
                if float(src.get('k3', 0.0)):
                    dist = np.append(dist, float(src['k3']))
        except (TypeError, ValueError) as e:
            raise DatasetError(f'{path}: bad intrinsics for frame {file.name}: {e}') from e
        if w <= 0 or h <= 0 or fx <= 0 or fy <= 0:
            raise DatasetError(f'{path}: frame {file.name}: non-positive size or focal length '
                               f'(w={w}, h={h}, fl_x={fx}, fl_y={fy})')
        return dict(fx=fx, fy=fy, cx=cx, cy=cy, w=w, h=h, dist=dist, fisheye=fisheye)
