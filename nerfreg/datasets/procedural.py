"""``ProceduralSceneDataset``: a small synthetic scene ray-traced on the CPU with NumPy.

The scene (two checker / stripe textured spheres, a checkered cube on a checkered slab,
Lambertian shading under a fixed light, opaque objects, empty background) is rendered from
cameras on a sphere, written in the Blender format and then read back by ``BlenderDataset``,
so the real loader is exercised. Textures are low-frequency and there are no thin parts, so
3D Gaussian Splatting learns it quickly on a CPU. Sampled surface points with their shaded
colours serve as initial points (like a COLMAP sparse cloud).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from mmengine.logging import print_log

from nerfreg.registry import DATASETS
from nerfreg.utils.fileio import atomic_output_dir

from .base import BackgroundLike, DatasetError
from .blender import BlenderDataset
from .cache import cache_root
from .image_io import write_image

#: Bump when the rendered scene changes, so caches are regenerated.
GENERATOR_VERSION = 2
LIGHT_DIR = np.array([0.45, 0.3, 0.84]) / np.linalg.norm([0.45, 0.3, 0.84])
AMBIENT = 0.4
SCENE_RADIUS = 1.55  # bounding sphere of SHAPES around the origin
EDGE_WIDTH = 0.025  # half width of texture transitions (world units; ~1 px at 128 px)

# (kind, centre, size, texture, colour a, colour b, texture scale)
SHAPES = [
    ('sphere', (-0.42, -0.22, 0.0), 0.5, 'checker_sph', (0.85, 0.25, 0.2), (0.95, 0.8, 0.3), 6),
    ('sphere', (0.5, 0.32, -0.12), 0.38, 'stripes_z', (0.2, 0.35, 0.85), (0.55, 0.85, 0.95), 0.25),
    ('box', (0.45, -0.5, -0.27), (0.23, 0.23, 0.23), 'checker_3d', (0.95, 0.55, 0.15),
     (0.45, 0.2, 0.55), 0.23),
    ('box', (0.0, 0.0, -0.65), (0.95, 0.8, 0.15), 'checker_3d', (0.3, 0.6, 0.3),
     (0.65, 0.85, 0.5), 0.4),
]


# ---------------------------------------------------------------------------------------------
# geometry
def _hit_sphere(o: np.ndarray, d: np.ndarray, c: np.ndarray, r: float) -> np.ndarray:
    oc = o - c
    b = np.einsum('ij,ij->i', d, oc)
    disc = b * b - (np.einsum('ij,ij->i', oc, oc) - r * r)
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    return np.where((disc > 0) & (t > 1e-4), t, np.inf)


def _hit_box(o: np.ndarray, d: np.ndarray, c: np.ndarray, h: np.ndarray) -> np.ndarray:
    inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)  # slab method; no 0-division
    t0, t1 = (c - h - o) * inv, (c + h - o) * inv
    tmin = np.minimum(t0, t1).max(axis=1)
    tmax = np.maximum(t0, t1).min(axis=1)
    return np.where((tmax >= tmin) & (tmin > 1e-4), tmin, np.inf)


def _normals(kind: str, c: np.ndarray, size: Any, p: np.ndarray) -> np.ndarray:
    if kind == 'sphere':
        return (p - c) / size
    q = (p - c) / np.asarray(size)
    axis = np.argmax(np.abs(q), axis=1)
    n = np.zeros_like(p)
    n[np.arange(len(p)), axis] = np.sign(q[np.arange(len(p)), axis])
    return n


def _albedo(shape: tuple, p: np.ndarray) -> np.ndarray:
    """Soft checker / stripe textures: the sign of a product of sines picks the colour, and
    clipping a scaled product gives ~2 px wide transitions instead of step edges (less high
    frequency for the splats to fit)."""
    _, c, size, tex, col_a, col_b, scale = shape
    q = p - np.asarray(c, dtype=p.dtype)
    if tex == 'checker_sph':  # `scale` segments around, scale / 2 from pole to pole
        az = np.arctan2(q[:, 1], q[:, 0]) / (2 * np.pi) + 0.5
        el = np.arccos(np.clip(q[:, 2] / size, -1, 1)) / np.pi
        wave, sharp = np.sin(np.pi * az * scale) * np.sin(np.pi * el * scale / 2), 5.0
    elif tex == 'stripes_z':
        wave, sharp = np.sin(np.pi * q[:, 2] / scale), scale / (np.pi * EDGE_WIDTH)
    else:  # solid 3D checker with cells of `scale`, offset so box faces cut cell centres
        wave = np.prod(np.sin(np.pi * (q / scale + 0.5)), axis=1)
        sharp = scale / (np.pi * EDGE_WIDTH)
    t = np.clip(0.5 - 0.5 * sharp * wave, 0.0, 1.0)[:, None]
    return (1 - t) * np.asarray(col_a) + t * np.asarray(col_b)


def _shade(kind: str, c: np.ndarray, size: Any, shape: tuple, p: np.ndarray) -> np.ndarray:
    n = _normals(kind, c, size, p)
    lam = AMBIENT + (1 - AMBIENT) * np.clip(n @ LIGHT_DIR, 0, None)
    return _albedo(shape, p) * lam[:, None]


def trace(origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour [R,3] and hit mask [R] of rays (nearest opaque surface, Lambertian)."""
    # rays missing the scene's bounding sphere hit nothing: trace only the others
    b = np.einsum('ij,ij->i', dirs, origins)
    near = b * b - (np.einsum('ij,ij->i', origins, origins) - SCENE_RADIUS ** 2) > 0
    rgb_all = np.zeros_like(origins)
    hit_all = np.zeros(len(origins), bool)
    if near.any():
        rgb_all[near], hit_all[near] = _trace(origins[near], dirs[near])
    return rgb_all, hit_all


def _trace(origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ts = []
    for kind, c, size, *_ in SHAPES:
        c = np.asarray(c, dtype=origins.dtype)
        ts.append(_hit_sphere(origins, dirs, c, size) if kind == 'sphere'
                  else _hit_box(origins, dirs, c, np.asarray(size, dtype=origins.dtype)))
    ts = np.stack(ts, 1)
    which, tmin = np.argmin(ts, 1), np.min(ts, 1)
    hit = np.isfinite(tmin)
    rgb = np.zeros_like(origins)
    for k, shape in enumerate(SHAPES):
        sel = hit & (which == k)
        if sel.any():
            p = origins[sel] + dirs[sel] * tmin[sel, None]
            rgb[sel] = _shade(shape[0], np.asarray(shape[1]), shape[2], shape, p)
    return rgb, hit


def sample_surface_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniformly on the visible object surfaces and their shaded colours."""
    rng = np.random.default_rng(seed)
    areas = [4 * np.pi * s[2] ** 2 if s[0] == 'sphere' else
             8 * (s[2][0] * s[2][1] + s[2][1] * s[2][2] + s[2][0] * s[2][2]) for s in SHAPES]
    counts = rng.multinomial(n * 2, np.asarray(areas) / sum(areas))
    pts, cols = [], []
    for shape, m in zip(SHAPES, counts):
        kind, c, size = shape[0], np.asarray(shape[1]), shape[2]
        if kind == 'sphere':
            v = rng.normal(size=(m, 3))
            p = c + size * v / np.linalg.norm(v, axis=1, keepdims=True)
        else:
            h = np.asarray(size)
            face_area = np.array([h[1] * h[2], h[0] * h[2], h[0] * h[1]]).repeat(2)
            face = rng.choice(6, size=m, p=face_area / face_area.sum())
            p = rng.uniform(-1, 1, size=(m, 3))
            ax = face // 2
            p[np.arange(m), ax] = np.where(face % 2 == 0, -1.0, 1.0)
            p = c + p * h
        pts.append(p)
        cols.append(_shade(kind, c, size, shape, p))
    pts, cols = np.concatenate(pts), np.concatenate(cols)
    # drop points hidden inside another shape (e.g. the slab under the spheres)
    inside = np.zeros(len(pts), bool)
    for kind, c, size, *_ in SHAPES:
        q = pts - np.asarray(c)
        if kind == 'sphere':
            inside |= np.linalg.norm(q, axis=1) < size - 1e-3
        else:
            inside |= np.all(np.abs(q) < np.asarray(size) - 1e-3, axis=1)
    pts, cols = pts[~inside], cols[~inside]
    keep = rng.permutation(len(pts))[:n]
    return pts[keep].astype(np.float32), cols[keep].astype(np.float32)


# ---------------------------------------------------------------------------------------------
# cameras and rendering
def look_at_c2w(eye: np.ndarray, target: np.ndarray | None = None,
                up: np.ndarray | None = None) -> np.ndarray:
    """OpenGL camera-to-world (camera looks down its -z, y up) at ``eye`` facing ``target``
    (default: the origin), with ``up`` (default +z) as the up direction."""
    target = np.zeros(3) if target is None else target
    up = np.array([0.0, 0.0, 1.0]) if up is None else up
    z = eye - target
    z = z / np.linalg.norm(z)
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-6:
        x = np.array([1.0, 0.0, 0.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def sphere_positions(n: int, radius: float, phase: float = 0.0) -> np.ndarray:
    """``n`` near-uniform points on a sphere (Fibonacci lattice), rotated by ``phase``."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    az = np.pi * (3 - np.sqrt(5)) * k + phase
    r = np.sqrt(1 - z * z)
    return radius * np.stack([r * np.cos(az), r * np.sin(az), z], 1)


def render_view(c2w: np.ndarray, size: int, angle_x: float, supersample: int = 3
                ) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 [H,W,3] (straight colour) and alpha uint8 [H,W,1] of one view.

    Adaptive anti-aliasing: one ray per pixel centre, then ``supersample`` x ``supersample``
    rays for pixels whose 3x3 neighbourhood changes colour or coverage (edges only).
    """
    focal = 0.5 * size / math.tan(angle_x / 2)
    rot_c2w = c2w[:3, :3] * np.array([1.0, -1.0, -1.0])  # OpenGL -> OpenCV camera axes
    eye = c2w[:3, 3]

    def rays(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.stack([(u - size / 2) / focal, (v - size / 2) / focal, np.ones_like(u)], -1)
        d = d @ rot_c2w.T
        d = (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)  # float32: 2x faster
        return np.ascontiguousarray(np.broadcast_to(eye.astype(np.float32), d.shape)), d

    v, u = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing='ij')
    rgb, hit = trace(*rays(u.ravel(), v.ravel()))
    rgb = rgb * hit[:, None]
    alpha = hit.astype(np.float64)
    img = np.concatenate([rgb, alpha[:, None]], 1).reshape(size, size, 4).astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    spread = (cv2.dilate(img, kernel) - cv2.erode(img, kernel)).max(-1)
    edge = np.flatnonzero(spread.ravel() > 1e-3)
    if supersample > 1 and len(edge):
        offs = (np.arange(supersample) + 0.5) / supersample - 0.5
        ou, ov = [o.ravel() for o in np.meshgrid(offs, offs)]
        uu = (u.ravel()[edge, None] + ou[None]).ravel()
        vv = (v.ravel()[edge, None] + ov[None]).ravel()
        c_ss, h_ss = trace(*rays(uu, vv))
        k = len(ou)
        rgb[edge] = (c_ss * h_ss[:, None]).reshape(-1, k, 3).mean(1)
        alpha[edge] = h_ss.reshape(-1, k).mean(1)
    straight = rgb / np.maximum(alpha, 1e-6)[:, None]
    rgb8 = np.clip(straight * 255 + 0.5, 0, 255).astype(np.uint8).reshape(size, size, 3)
    a8 = np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8).reshape(size, size, 1)
    rgb8[a8[..., 0] == 0] = 0
    return rgb8, a8


def generate_scene(out_dir: Path, image_size: int = 128, n_train: int = 100, n_val: int = 10,
                   n_test: int = 20, radius: float = 4.0, angle_x: float = 2 * math.atan(0.42),
                   num_points: int = 4000, seed: int = 0, supersample: int = 3) -> None:
    """Render the scene and write it in the Blender format (+ ``points3d.npz``) to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    phases = {'train': 0.0, 'val': 0.9, 'test': 2.1}
    for split, n in (('train', n_train), ('val', n_val), ('test', n_test)):
        frames = []
        for k, eye in enumerate(sphere_positions(n, radius, phases[split])):
            c2w = look_at_c2w(eye)
            rgb, alpha = render_view(c2w, image_size, angle_x, supersample)
            write_image(out_dir / split / f'r_{k}.png', rgb, alpha)
            frames.append(dict(file_path=f'./{split}/r_{k}', transform_matrix=c2w.tolist()))
        (out_dir / f'transforms_{split}.json').write_text(
            json.dumps(dict(camera_angle_x=angle_x, frames=frames), indent=1))
    pts, cols = sample_surface_points(num_points, seed)
    np.savez(out_dir / 'points3d.npz', xyz=pts, rgb=cols)


@DATASETS.register_module()
class ProceduralSceneDataset(BlenderDataset):
    """The built-in synthetic scene, generated on first use and cached on disk.

    Args:
        data_root: where the scene is (or is written); default
            ``~/.cache/nerfreg/procedural/<hash of the generation parameters>``.
        image_size: square image side in pixels (128 by default).
        n_train / n_val / n_test: number of views per split.
        num_points: initial surface points (``points`` / ``points_rgb``).
        downscale, background, cache_dir: as for ``BlenderDataset`` (background 'white' by
            default); ``cache_dir`` also moves the default ``data_root``.
    """

    def __init__(self, data_root: str | Path | None = None, image_size: int = 128,
                 n_train: int = 100, n_val: int = 10, n_test: int = 20, num_points: int = 4000,
                 seed: int = 0, downscale: float = 1,
                 background: BackgroundLike = 'white',
                 cache_dir: str | Path | None = None) -> None:
        params = dict(version=GENERATOR_VERSION, image_size=int(image_size),
                      n_train=int(n_train), n_val=int(n_val), n_test=int(n_test),
                      num_points=int(num_points), seed=int(seed))
        if min(params['n_train'], params['image_size']) < 1:
            raise DatasetError(f'ProceduralSceneDataset: bad parameters {params}')
        if data_root is None:
            key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
            data_root = cache_root(cache_dir) / 'procedural' / key
        root = Path(data_root).expanduser()
        if self._read_params(root) != params:
            self._generate(root, params)
        super().__init__(root, downscale=downscale, background=background, cache_dir=cache_dir)
        with np.load(root / 'points3d.npz') as f:
            self.points = torch.from_numpy(f['xyz']).float()
            self.points_rgb = torch.from_numpy(f['rgb']).float()

    @staticmethod
    def _read_params(root: Path) -> dict | None:
        """Parameters of the scene in ``root`` (None if there is no complete scene)."""
        try:
            return json.loads((root / 'params.json').read_text())
        except (OSError, ValueError):
            return None

    @classmethod
    def _generate(cls, root: Path, params: dict) -> None:
        """Render into a temporary folder, then move it in place.

        Safe against interruption and against several processes (e.g. distributed ranks)
        generating at once: the first complete scene wins. A folder that is not one of our
        scenes is never deleted.
        """
        t0 = time.perf_counter()
        if root.exists() and any(root.iterdir()) and cls._read_params(root) is None:
            raise DatasetError(f'ProceduralSceneDataset: data_root {root} exists and is not a '
                               'procedural scene (no params.json); choose an empty folder')
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_output_dir(root) as tmp:
                gen = {k: v for k, v in params.items() if k != 'version'}
                generate_scene(tmp, **gen)
                (tmp / 'params.json').write_text(json.dumps(params, sort_keys=True))
                if cls._read_params(root) not in (None, params):  # stale scene of ours
                    shutil.rmtree(root, ignore_errors=True)
        except FileExistsError:
            if cls._read_params(root) != params:  # not another process' identical scene
                raise
        print_log(f'ProceduralSceneDataset: rendered {root} in {time.perf_counter() - t0:.1f} s',
                  logger='current')
