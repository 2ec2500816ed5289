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
from .sparse_points import check_same_poses, observed_points, read_sparse_model, sparse_points

_INTR_KEYS = ('fl_x', 'fl_y', 'cx', 'cy', 'w', 'h', 'camera_angle_x', 'camera_angle_y', 'k1',
              'k2', 'k3', 'k4', 'p1', 'p2', 'camera_model', 'is_fisheye')


def _rel(file: Path, root: Path) -> str:
    """``file`` relative to ``root``, lexically (symlinked data roots keep working)."""
    return Path(os.path.relpath(file, root)).as_posix()


def read_frames(path: Path, meta: dict) -> list[tuple[Path, dict, np.ndarray]]:
    """The frames of ``meta`` (read from ``path``) whose image exists, as (image file, frame,
    OpenGL camera-to-world), in natural order of the image paths. Frames whose image is
    missing are skipped with one warning; none left is a ``DatasetError``."""
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
                      f'image file is missing (e.g. {missing[0]})', UserWarning, stacklevel=3)
    if not frames:
        raise DatasetError(f'{path}: none of the {len(meta["frames"])} frames has an '
                           'existing image file')
    frames.sort(key=lambda f: natural_key(_rel(f[0], path.parent)))
    return frames


def image_names(frames: list[tuple[Path, dict, np.ndarray]], folder: Path
                ) -> tuple[str, list[str]]:
    """(image folder relative to ``folder``, image names in it) of ``frames``: the file names
    when all images share one folder, else paths relative to ``folder``."""
    parents = {f[0].parent for f in frames}
    if len(parents) == 1:
        return _rel(parents.pop(), folder), [f[0].name for f in frames]
    return '.', [_rel(f[0], folder) for f in frames]


def frame_intrinsics(meta: dict, frame: dict, file: Path, path: Path) -> dict[str, Any]:
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

    ``sparse_dir``: a COLMAP sparse model made with these frames' poses (``nerfreg-process
    triangulate``; a path, relative to ``data_root`` unless absolute) gives ``points``,
    ``points_rgb`` (at most ``max_points``) and ``observed_points`` (for ``depth_loss``),
    in the transforms' own frame, as ``ColmapDataset`` does. Without it there are none.
    """

    def __init__(self, data_root: str | Path, transforms: str = 'transforms.json',
                 downscale: float = 1, holdout_every: int = 8, val_every: int = 0,
                 val: str = 'auto', background: BackgroundLike = 'white', cache: bool = True,
                 cache_dir: str | Path | None = None,
                 use_prescaled_images: bool = False, sparse_dir: str | Path | None = None,
                 max_points: int | None = None) -> None:
        t0 = time.perf_counter()
        root = self.check_root(data_root, 'NGPDataset')
        path = root / transforms
        meta = read_json(path)
        self.data_root, self.downscale = root, float(downscale)
        self.background = parse_background(background)
        self.aabb_scale = float(meta.get('aabb_scale', 1))

        frames = read_frames(path, meta)

        rows = [frame_intrinsics(meta, fr, file, path) for file, fr, _ in frames]
        kmax = max(len(r['dist']) for r in rows)
        dist = np.stack([np.pad(r['dist'], (0, kmax - len(r['dist']))) for r in rows])
        image_dir, names = image_names(frames, path.parent)
        cameras = poses = Cameras.from_opengl_c2w(
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
        if sparse_dir is not None:
            keys = {n: i for i, n in enumerate(names)}  # dataset names or paths in the JSON
            keys.update({_rel(f[0], path.parent): i for i, f in enumerate(frames)})
            self._load_sparse(root / Path(sparse_dir).expanduser(), path, keys, names, poses,
                              max_points)
        self._set_normalisation()
        pts = 0 if self.points is None else len(self.points)
        print_log(f'NGPDataset {path}: {len(frames)} of {len(meta["frames"])} frames '
                  f'({self.split_summary()}){f", {pts} points" if sparse_dir else ""}, loaded '
                  f'in {time.perf_counter() - t0:.1f} s{self.cache_summary()}', logger='current')

    def _load_sparse(self, folder: Path, path: Path, keys: dict[str, int], names: list[str],
                     poses: Cameras, max_points: int | None) -> None:
        """``points``, ``points_rgb`` and ``observed_points`` from the COLMAP model in
        ``folder``, whose images must be frames of ``path`` with the same poses."""
        fix = f'Make a model with these poses: nerfreg-process triangulate {path}'
        _, images, points = read_sparse_model(folder, 'NGPDataset')
        unknown = sorted(im.name for im in images.values() if im.name not in keys)
        if unknown or not images:
            raise DatasetError(
                f'NGPDataset: {len(unknown)} of the {len(images)} images of the sparse model '
                f'{folder} are not frames of {path} (e.g. {unknown[:3]}); frames are named '
                f'like {names[:2]}. {fix}')
        entries = sorted(images.values(), key=lambda im: keys[im.name])
        check_same_poses(entries, poses[[keys[im.name] for im in entries]], folder, fix)
        for im in entries:  # the dataset's names, whatever form the model used
            im.name = names[keys[im.name]]
        if len(entries) < len(names):
            warnings.warn(f'{len(names) - len(entries)} of the {len(names)} frames of {path} are '
                          f'not in the sparse model {folder}: they observe no sparse points',
                          UserWarning, stacklevel=3)
        self.points, self.points_rgb = sparse_points(points, max_points)
        self.observed_points = {n: torch.zeros(0, 3) for n in names}
        self.observed_points.update(observed_points(entries, points, torch.eye(4)))
