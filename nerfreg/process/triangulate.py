"""Sparse points for a capture whose poses are known: an instant-ngp / nerfstudio
``transforms.json`` -> a COLMAP sparse model in the transforms' own world frame.

The frames' intrinsics (with their OpenCV distortion) and poses are written into a COLMAP
database and model as they are; only features, matches and 3D points are computed (SIFT,
matching, then pycolmap's known-pose triangulation, which keeps every pose and intrinsic
fixed). ``NGPDataset(sparse_dir=...)`` reads the result, which gives the splatting init its
points and ``depth_loss`` the points each image observed.

The model goes to ``--out`` or, by default, to the nerfreg cache
(``<cache root>/triangulated/<key>``, see ``nerfreg.datasets.cache``), never into the data
folder. The key hashes the transforms file and image files (path, size, mtime) and the
options, so a second call with the same inputs reuses the model.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nerfreg.cameras.conventions import opengl_c2w_to_opencv_w2c
from nerfreg.datasets.base import DatasetError
from nerfreg.datasets.blender import read_json
from nerfreg.datasets.cache import cache_root, file_identity
from nerfreg.datasets.ngp import frame_intrinsics, image_names, read_frames

from ..utils.fileio import atomic_output_dir
from . import sfm
from .errors import ProcessError, import_pycolmap
from .progress import StageDisplay
from .report import write_report
from .state import files_fingerprint, fingerprint

#: Bump when the output changes for the same inputs, so older cached models are not reused.
VERSION = 1
#: The report beside the model files; its ``key`` says which inputs made the model.
REPORT = 'triangulation.json'


@dataclass
class TriangulateOptions:
    """What ``nerfreg-process triangulate`` was asked to do."""

    transforms: Path
    out: Path | None = None  # default: the nerfreg cache
    max_size: int | None = None
    matcher: str = 'exhaustive'
    num_threads: int = 0  # 0: all cores
    cache_dir: Path | None = None
    verbose: bool = False
    quiet: bool = False


def colmap_camera(intr: dict[str, Any], width: int, height: int) -> tuple[str, list[float]]:
    """(COLMAP model name, params) of a frame's intrinsics (``frame_intrinsics``), rescaled
    from the declared size to the image's real ``width`` x ``height``."""
    sx, sy = width / intr['w'], height / intr['h']
    if abs(sx - sy) > 0.02 * max(sx, sy) + 1.5 / min(width, height):
        raise ProcessError(f'image is {width}x{height} but the transforms say '
                           f'{intr["w"]}x{intr["h"]}: the aspect ratio differs (rotated by EXIF '
                           'orientation, or the wrong file?)')
    pinhole = [intr['fx'] * sx, intr['fy'] * sy, intr['cx'] * sx, intr['cy'] * sy]
    dist = [float(d) for d in intr['dist']]
    if intr['fisheye']:
        return 'OPENCV_FISHEYE', pinhole + dist[:4]
    if len(dist) > 4:  # k1 k2 p1 p2 k3: the rational model without its denominator
        return 'FULL_OPENCV', pinhole + dist[:5] + [0.0, 0.0, 0.0]
    if any(dist):
        return 'OPENCV', pinhole + dist
    return 'PINHOLE', pinhole


def _set_known_cameras(db: Path, intrinsics: dict[str, dict]) -> None:
    """Replace the cameras COLMAP guessed at extraction by the frames' own intrinsics."""
    pycolmap = import_pycolmap()
    with pycolmap.Database.open(db) as database:
        cams = {c.camera_id: c for c in database.read_all_cameras()}
        for im in database.read_all_images():
            guess = cams[im.camera_id]
            try:
                model, params = colmap_camera(intrinsics[im.name], guess.width, guess.height)
            except ProcessError as exc:
                raise ProcessError(f'{im.name}: {exc}') from exc
            cam = pycolmap.Camera(model=model, width=guess.width, height=guess.height,
                                  params=params, camera_id=im.camera_id)
            cam.has_prior_focal_length = True  # matching verifies with the known focal
            database.update_camera(cam)


def _known_pose_model(db: Path, c2w: dict[str, np.ndarray]) -> Any:
    """A pycolmap Reconstruction of the database's cameras and images (same ids), each
    image registered with its known pose (OpenGL camera-to-world -> COLMAP world-to-camera)."""
    pycolmap = import_pycolmap()
    rec = pycolmap.Reconstruction()
    with pycolmap.Database.open(db) as database:
        for cam in database.read_all_cameras():
            rec.add_camera_with_trivial_rig(cam)
        for im in database.read_all_images():
            if im.frame_id != im.image_id:  # the model's trivial frames reuse the image ids
                raise ProcessError(f'{db}: image {im.name} has frame id {im.frame_id} != image '
                                   f'id {im.image_id}; delete the database and run again')
            rot, t = opengl_c2w_to_opencv_w2c(torch.from_numpy(c2w[im.name])[None].double())
            cam_from_world = np.concatenate([rot[0].numpy(), t[0].numpy()[:, None]], 1)
            image = pycolmap.Image(name=im.name, camera_id=im.camera_id, image_id=im.image_id)
            rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(cam_from_world))
    return rec


def _summary(rec: Any) -> dict[str, Any]:
    return dict(points=rec.num_points3D(),
                mean_track_length=round(float(rec.compute_mean_track_length()), 3),
                mean_reprojection_error_px=round(float(rec.compute_mean_reprojection_error()), 4),
                mean_observations_per_image=round(
                    float(rec.compute_mean_observations_per_reg_image()), 1))


def _check_options(opts: TriangulateOptions) -> None:
    if opts.matcher not in sfm.PLAIN_MATCHERS:
        raise ProcessError(f'--matcher {opts.matcher} is unknown here; choose one of '
                           f'{", ".join(sfm.PLAIN_MATCHERS)}')
    if opts.max_size is not None and opts.max_size < 100:
        raise ProcessError(f'--max-size {opts.max_size} is too small for feature matching; '
                           'use 100 or more (e.g. 1600), or leave it out.')


def triangulate(opts: TriangulateOptions) -> dict[str, Any]:
    """Make (or reuse) the sparse model of ``opts.transforms``; return its report (also in
    ``<out>/triangulation.json``), with ``out`` and ``reused`` set."""
    _check_options(opts)
    path = Path(os.path.abspath(opts.transforms))  # lexical: symlinked data roots keep working
    try:
        meta = read_json(path)
        frames = read_frames(path, meta)
        intr = [frame_intrinsics(meta, fr, file, path) for file, fr, _ in frames]
    except DatasetError as exc:
        raise ProcessError(str(exc)) from exc
    image_dir, names = image_names(frames, path.parent)
    images = path.parent / image_dir
    key = fingerprint(VERSION, file_identity(path), files_fingerprint(images, names),
                      opts.max_size, opts.matcher)
    out = Path(opts.out) if opts.out is not None else (
        cache_root(opts.cache_dir) / 'triangulated' / key)
    out = Path(os.path.abspath(out))
    display = StageDisplay(quiet=opts.quiet)
    use = f'--cfg-options data.sparse_dir={out}'
    old = read_report(out)
    if old is not None and old.get('key') == key:
        display.note(f'sparse model of {path} reused: {out}  (train with {use})')
        return dict(old, out=str(out), reused=True)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and old is None)):
        raise ProcessError(f'--out {out} exists and is not an earlier triangulation output; '
                           'choose a new folder so that nothing of yours is overwritten.')
    if old is not None:  # made from other inputs: replaced
        shutil.rmtree(out)

    pycolmap = import_pycolmap()
    pycolmap.logging.minloglevel = 0 if opts.verbose else 2
    threads = opts.num_threads or os.cpu_count() or 1
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with atomic_output_dir(out) as tmp:
        db = tmp / 'database.db'
        with display.stage('extract', f'SIFT features of {len(names)} images'):
            sfm.extract_features(db, images, names, 'PINHOLE', False, opts.max_size, threads)
            _set_known_cameras(db, dict(zip(names, intr)))
        with display.stage('match', f'{opts.matcher} matching'):
            sfm.match_features(db, opts.matcher, threads)
            links = sfm.check_overlap(db)
        with display.stage('triangulate', 'points from the known poses'):
            known = _known_pose_model(db, {n: f[2] for n, f in zip(names, frames)})
            options = pycolmap.IncrementalPipelineOptions()
            options.num_threads, options.random_seed = threads, 0
            rec = pycolmap.triangulate_points(known, db, images, tmp, options=options,
                                              refine_intrinsics=False)
        if rec.num_points3D() == 0:
            raise ProcessError(f'no 3D point could be triangulated from the {len(names)} frames '
                               f'of {path}: the views share too few features (or their poses '
                               'are wrong). Check the poses, or use more overlapping frames.')
        db.unlink()
        report = dict(transforms=str(path), key=key, frames_listed=len(meta['frames']),
                      frames_used=len(names), image_dir=str(images), max_size=opts.max_size,
                      matcher=opts.matcher, num_threads=threads, pycolmap=pycolmap.__version__,
                      images_without_overlap=[n for n, k in links.items() if k == 0],
                      **_summary(rec), seconds=round(time.perf_counter() - t0, 2))
        write_report(tmp / REPORT, report)
    display.note(f'{report["points"]} points, mean track length '
                 f'{report["mean_track_length"]:.2f}, mean reprojection error '
                 f'{report["mean_reprojection_error_px"]:.3f} px, {report["seconds"]:.1f} s')
    display.note(f'sparse model of {path}: {out}\n(train with {use})')
    return dict(report, out=str(out), reused=False)


def read_report(out: Path) -> dict[str, Any] | None:
    """The report of an earlier triangulation into ``out``, or None."""
    try:
        return json.loads((out / REPORT).read_text())
    except (OSError, ValueError):
        return None
