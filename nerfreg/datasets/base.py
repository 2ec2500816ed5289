"""Common parts of the scene datasets: errors, splits, hold-out, scene normalisation."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
from mmengine.logging import print_log

from nerfreg.cameras import Cameras

BackgroundLike = Union[str, Sequence[float], np.ndarray, torch.Tensor]


class DatasetError(ValueError):
    """Bad scene input (missing files, corrupt images, inconsistent metadata).

    Raised at dataset construction, before any training; the message names the file.
    """


@dataclass
class SceneSplit:
    """Views of one split: cameras, uint8 RGB images [H,W,3] (CPU), optional alphas and
    loss masks [H,W,1]."""

    cameras: Cameras
    images: list[torch.Tensor]
    alphas: list[torch.Tensor] | None
    names: list[str]
    masks: list[torch.Tensor] | None = None  # uint8 [H,W,1]: 255 = in the loss, 0 = ignored

    def __len__(self) -> int:
        return len(self.names)

    def nbytes(self) -> int:
        n = sum(im.numel() for im in self.images)
        n += sum(m.numel() for m in self.masks) if self.masks else 0
        return n + (sum(a.numel() for a in self.alphas) if self.alphas else 0)


def natural_key(name: str) -> list:
    """Sort key putting ``2.jpg`` before ``10.jpg`` (digit runs compare as numbers)."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r'(\d+)', name)]


def holdout_indices(n: int, every: int) -> tuple[list[int], list[int]]:
    """(train, test) indices: index % every == 0 is test (3DGS / Mip-NeRF 360 "llffhold").

    ``every <= 0`` keeps every view for training and leaves test empty.
    """
    if every <= 0:
        return list(range(n)), []
    test = [i for i in range(n) if i % every == 0]
    train = [i for i in range(n) if i % every != 0]
    return train, test


def split_indices(n: int, holdout_every: int, val_every: int = 0
                  ) -> tuple[list[int], list[int], list[int]]:
    """(train, val, test) indices, pairwise disjoint.

    Test is ``holdout_indices(n, holdout_every)``; val is every ``val_every``-th of the
    remaining (non-test) views, counted from the first one, and is removed from train.
    ``val_every <= 0`` leaves val empty.
    """
    train, test = holdout_indices(n, holdout_every)
    if val_every <= 0:
        return train, [], test
    val = train[::val_every]
    if len(val) == len(train):
        raise DatasetError(f'val_every={val_every} leaves no training views ({n} views, '
                           f'holdout_every={holdout_every}); use val_every >= 2 or 0')
    held = set(val)
    return [i for i in train if i not in held], val, test


def parse_background(background: BackgroundLike) -> torch.Tensor:
    """'white' | 'black' | [r, g, b] (0..1) -> float tensor [3]."""
    if isinstance(background, str):
        named = {'white': [1.0, 1.0, 1.0], 'black': [0.0, 0.0, 0.0]}
        if background not in named:
            raise DatasetError(f"background must be 'white', 'black' or [r, g, b], got "
                               f'{background!r}')
        return torch.tensor(named[background])
    bg = torch.as_tensor(np.asarray(background, dtype=np.float32)).reshape(-1)
    if bg.numel() != 3 or bool((bg < 0).any() or (bg > 1).any()):
        raise DatasetError(f'background must be 3 values in [0, 1], got {background!r}')
    return bg.float()


def camera_extent(cameras: Cameras,
                  points: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """(centre [3], extent): mean of camera centres and 1.1 x the largest distance to it.

    This is 3DGS' "cameras extent" (``getNerfppNorm``) that scales its densification
    thresholds and learning rates. When the centres coincide (one training view, or a
    capture turned on a tripod) that distance is zero and every threshold scaled by it
    would collapse, so the extent falls back to 1.1 x the median distance from the centre
    to the sparse ``points`` (the scene's depth), or to 1.1 without points, with a warning.
    """
    centers = cameras.centers().double()
    center = centers.mean(0) if len(centers) else torch.zeros(3, dtype=torch.float64)
    radius = float((centers - center).norm(dim=-1).max()) if len(centers) else 0.0
    depth, source = 1.0, '1 (no sparse points)'
    if points is not None and len(points):
        depth = float((points.double() - center).norm(dim=-1).median()) or 1.0
        source = 'the median distance to the sparse points'
    if radius <= 1e-6 * depth:
        radius = depth
        print_log(f'The {len(centers)} training camera(s) share one centre, so the scene '
                  f'extent (which scales densification thresholds and the means lr) falls '
                  f'back to 1.1 x {source} = {1.1 * radius:.4g}.', logger='current',
                  level=logging.WARNING)
    return center.float(), 1.1 * radius


def orient_and_scale(cameras: Cameras, points: torch.Tensor | None, orient: bool,
                     rescale: bool) -> tuple[Cameras, torch.Tensor | None, torch.Tensor]:
    """Optionally rotate the world so the mean camera "up" is +z and centre / rescale it so
    camera centres fit in [-1, 1]. Returns (cameras, points, 4x4 world transform applied).

    A similarity transform X' = s (A X + b) keeps projections: R' = R A^T, t' = s (t - R A^T b).
    """
    tf = torch.eye(4, dtype=torch.float64)
    if not (orient or rescale):
        return cameras, points, tf.float()
    centers = cameras.centers().double()
    rot = torch.eye(3, dtype=torch.float64)
    if orient:
        up = -cameras.R.double()[:, 1, :].mean(0)  # OpenCV camera y points down
        up = up / up.norm()
        z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        v, c = torch.linalg.cross(up, z), float(up @ z)
        if c < -1 + 1e-8:  # up == -z: rotate by pi about x
            rot = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
        else:
            vx = torch.tensor([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]],
                              dtype=torch.float64)
            rot = torch.eye(3, dtype=torch.float64) + vx + vx @ vx / (1 + c)
    shift = -(rot @ centers.mean(0))
    moved = centers @ rot.T + shift
    scale = 1.0 / float(moved.abs().max()) if rescale and float(moved.abs().max()) > 0 else 1.0
    tf[:3, :3], tf[:3, 3] = scale * rot, scale * shift
    r_new = cameras.R.double() @ rot.T
    t_new = scale * (cameras.t.double() - (r_new @ shift[:, None])[..., 0])
    cams = Cameras(R=r_new.float(), t=t_new.float(), fx=cameras.fx, fy=cameras.fy,
                   cx=cameras.cx, cy=cameras.cy, width=cameras.width, height=cameras.height,
                   dist=cameras.dist, names=list(cameras.names))
    if points is not None:
        points = ((points.double() @ rot.T + shift) * scale).float()
    return cams, points, tf.float()


class BaseSceneDataset:
    """Scene dataset contract: ``train``, ``val``, ``test`` (``SceneSplit``), ``points``,
    ``points_rgb``, ``scene_center``, ``scene_extent``, ``background``."""

    train: SceneSplit
    val: SceneSplit
    test: SceneSplit
    points: torch.Tensor | None = None
    points_rgb: torch.Tensor | None = None
    scene_center: torch.Tensor
    scene_extent: float
    background: torch.Tensor

    @staticmethod
    def check_root(data_root: Union[str, Path, None], what: str) -> Path:
        if data_root is None:
            raise DatasetError(f'{what}: data_root is not set')
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise DatasetError(f'{what}: data_root {root} does not exist or is not a directory')
        return root

    def _set_normalisation(self) -> None:
        cams = self.train.cameras if len(self.train) else self.test.cameras
        self.scene_center, self.scene_extent = camera_extent(cams, getattr(self, 'points', None))

    def build_splits(self, cameras: Cameras, imgs: list[np.ndarray],
                     alphas: list[np.ndarray | None], names: list[str], holdout_every: int,
                     val: str = 'auto', val_every: int = 0,
                     masks: list[np.ndarray] | None = None) -> None:
        """Splits by index (``split_indices``): test = every ``holdout_every``-th view.

        Val: ``val_every > 0`` holds every ``val_every``-th non-test view out of training
        (``val`` must then be 'auto'). With ``val_every == 0``, ``val`` picks it: 'auto' or
        'none' (empty: no validation during training), 'train' (the training views) or
        'test' (the test views; scores reported during training then peek at the test set).
        """
        if val not in ('auto', 'test', 'train', 'none'):
            raise DatasetError(f"val must be 'auto', 'test', 'train' or 'none', got {val!r}")
        if val_every > 0 and val != 'auto':
            raise DatasetError(f'val_every={val_every} carves val from the training views; it '
                               f"cannot be combined with val={val!r} (drop one of the two)")
        train_idx, val_idx, test_idx = split_indices(len(names), holdout_every, val_every)
        self.train = make_split(cameras, imgs, alphas, names, train_idx, masks)
        self.test = make_split(cameras, imgs, alphas, names, test_idx, masks)
        if val == 'test':
            self.val = self.test
        elif val == 'train':
            self.val = self.train
        else:
            self.val = make_split(cameras, imgs, alphas, names, val_idx, masks)

    def split_summary(self) -> str:
        """'58 train, 9 val, 10 test' (val named as shared when it is the test/train split)."""
        val = ('val = test' if self.val is self.test and len(self.val) else
               'val = train' if self.val is self.train else f'{len(self.val)} val')
        return f'{len(self.train)} train, {val}, {len(self.test)} test'

    def cache_summary(self) -> str:
        """', derived images: 70 from the cache <dir>, 7 computed' (empty when unused)."""
        cache = getattr(self, 'image_cache', None)
        if cache is None or not cache.enabled or not (cache.hits or cache.misses):
            return ''
        return (f'; derived images: {cache.hits} from the cache {cache.root}, '
                f'{cache.misses} computed')

    def split(self, name: str) -> SceneSplit:
        if name not in ('train', 'val', 'test'):
            raise KeyError(f"split must be 'train', 'val' or 'test', got {name!r}")
        return getattr(self, name)

    def __repr__(self) -> str:
        pts = 0 if self.points is None else len(self.points)
        return (f'{type(self).__name__}(train={len(self.train)}, val={len(self.val)}, '
                f'test={len(self.test)}, points={pts}, extent={self.scene_extent:.3f})')


def make_split(cameras: Cameras, images: list[np.ndarray], alphas: list[np.ndarray | None],
               names: list[str], index: Sequence[int],
               masks: list[np.ndarray] | None = None) -> SceneSplit:
    """SceneSplit of the views at ``index`` (numpy uint8 images -> torch tensors)."""
    idx = list(index)
    imgs = [torch.from_numpy(np.ascontiguousarray(images[i])) for i in idx]
    has_alpha = any(alphas[i] is not None for i in idx)
    alph = None
    if has_alpha:
        alph = [torch.from_numpy(np.ascontiguousarray(alphas[i])) if alphas[i] is not None
                else torch.full(images[i].shape[:2] + (1,), 255, dtype=torch.uint8) for i in idx]
    msk = None if masks is None else [torch.from_numpy(np.ascontiguousarray(masks[i]))
                                      for i in idx]
    return SceneSplit(cameras=cameras[idx], images=imgs, alphas=alph,
                      names=[names[i] for i in idx], masks=msk)
