"""Readers and writers for COLMAP sparse models (``cameras``, ``images``, ``points3D``),
binary (``.bin``) and text (``.txt``).

Own implementation of the documented file formats
(https://colmap.github.io/format.html) so that loading a scene needs neither COLMAP nor
pycolmap (an optional dependency whose 4.x API changed), and so that we can write models
(tests convert between formats). Array-heavy parts use ``numpy.frombuffer``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np

PathLike = Union[str, Path]


class ColmapFormatError(ValueError):
    """A COLMAP model file is missing, truncated or malformed."""


@dataclass(frozen=True)
class CameraModel:
    model_id: int
    name: str
    num_params: int


#: COLMAP camera models (id, name, number of parameters), from colmap/src/colmap/sensor/models.h.
CAMERA_MODELS = [
    CameraModel(0, 'SIMPLE_PINHOLE', 3), CameraModel(1, 'PINHOLE', 4),
    CameraModel(2, 'SIMPLE_RADIAL', 4), CameraModel(3, 'RADIAL', 5),
    CameraModel(4, 'OPENCV', 8), CameraModel(5, 'OPENCV_FISHEYE', 8),
    CameraModel(6, 'FULL_OPENCV', 12), CameraModel(7, 'FOV', 5),
    CameraModel(8, 'SIMPLE_RADIAL_FISHEYE', 4), CameraModel(9, 'RADIAL_FISHEYE', 5),
    CameraModel(10, 'THIN_PRISM_FISHEYE', 12), CameraModel(11, 'RAD_TAN_THIN_PRISM_FISHEYE', 16),
]
MODEL_BY_ID = {m.model_id: m for m in CAMERA_MODELS}
MODEL_BY_NAME = {m.name: m for m in CAMERA_MODELS}


@dataclass
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # float64 [num_params]


@dataclass
class ColmapImage:
    id: int
    qvec: np.ndarray  # float64 [4], (w, x, y, z), world-to-camera
    tvec: np.ndarray  # float64 [3]
    camera_id: int
    name: str
    xys: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # float64 [K,2]
    point3D_ids: np.ndarray = field(  # noqa: N815 (COLMAP's name)
        default_factory=lambda: np.zeros(0, np.int64))  # int64 [K], -1 = no 3D point


@dataclass
class ColmapPoints:
    """All 3D points of a model as arrays (tracks are ragged, kept as a list)."""

    ids: np.ndarray  # int64 [P]
    xyz: np.ndarray  # float64 [P,3]
    rgb: np.ndarray  # uint8 [P,3]
    errors: np.ndarray  # float64 [P]
    tracks: list[np.ndarray] = field(default_factory=list)  # per point int32 [L,2] (image, idx)

    def __len__(self) -> int:
        return len(self.ids)


def empty_points() -> ColmapPoints:
    return ColmapPoints(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3), np.uint8),
                        np.zeros(0), [])


# ---------------------------------------------------------------------------------------------
# binary
class _Reader:
    """Bounds-checked little-endian reader over a whole file's bytes."""

    def __init__(self, path: Path) -> None:
        self.path, self.buf, self.pos = path, path.read_bytes(), 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize('<' + fmt)
        if self.pos + size > len(self.buf):
            raise ColmapFormatError(f'{self.path}: truncated file (needed {size} bytes at offset '
                                    f'{self.pos}, file has {len(self.buf)})')
        out = struct.unpack_from('<' + fmt, self.buf, self.pos)
        self.pos += size
        return out

    def array(self, dtype: np.dtype, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if self.pos + size > len(self.buf):
            raise ColmapFormatError(f'{self.path}: truncated file (array of {count} at offset '
                                    f'{self.pos})')
        out = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += size
        return out

    def cstring(self) -> str:
        end = self.buf.find(b'\x00', self.pos)
        if end < 0:
            raise ColmapFormatError(f'{self.path}: truncated file (unterminated image name)')
        out = self.buf[self.pos:end].decode('utf-8')
        self.pos = end + 1
        return out


def read_cameras_binary(path: PathLike) -> dict[int, ColmapCamera]:
    r = _Reader(Path(path))
    cams = {}
    for _ in range(r.take('Q')[0]):
        cam_id, model_id, width, height = r.take('iiQQ')
        if model_id not in MODEL_BY_ID:
            raise ColmapFormatError(f'{path}: camera {cam_id} has unknown model id {model_id}')
        model = MODEL_BY_ID[model_id]
        params = np.array(r.take('d' * model.num_params), dtype=np.float64)
        cams[cam_id] = ColmapCamera(cam_id, model.name, width, height, params)
    return cams


_OBS = np.dtype([('x', '<f8'), ('y', '<f8'), ('id', '<i8')])


def read_images_binary(path: PathLike) -> dict[int, ColmapImage]:
    r = _Reader(Path(path))
    images = {}
    for _ in range(r.take('Q')[0]):
        vals = r.take('I7dI')
        name = r.cstring()
        obs = r.array(_OBS, r.take('Q')[0])
        xys = np.stack([obs['x'], obs['y']], -1) if len(obs) else np.zeros((0, 2))
        images[vals[0]] = ColmapImage(
            id=vals[0], qvec=np.array(vals[1:5]), tvec=np.array(vals[5:8]), camera_id=vals[8],
            name=name, xys=xys, point3D_ids=obs['id'].astype(np.int64))
    return images


def read_points3D_binary(path: PathLike) -> ColmapPoints:  # noqa: N802 (COLMAP's name)
    r = _Reader(Path(path))
    n = r.take('Q')[0]
    ids = np.zeros(n, np.int64)
    xyz, rgb, err = np.zeros((n, 3)), np.zeros((n, 3), np.uint8), np.zeros(n)
    tracks = []
    for i in range(n):
        vals = r.take('Q3d3BdQ')
        ids[i], xyz[i], rgb[i], err[i] = vals[0], vals[1:4], vals[4:7], vals[7]
        tracks.append(r.array(np.dtype('<i4'), 2 * vals[8]).reshape(-1, 2).copy())
    return ColmapPoints(ids, xyz, rgb, err, tracks)


def write_cameras_binary(cameras: dict[int, ColmapCamera], path: PathLike) -> None:
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(cameras)))
        for cam in cameras.values():
            model = MODEL_BY_NAME[cam.model]
            f.write(struct.pack('<iiQQ', cam.id, model.model_id, cam.width, cam.height))
            f.write(struct.pack('<' + 'd' * model.num_params, *map(float, cam.params)))


def write_images_binary(images: dict[int, ColmapImage], path: PathLike) -> None:
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(images)))
        for im in images.values():
            f.write(struct.pack('<I7dI', im.id, *map(float, im.qvec), *map(float, im.tvec),
                                im.camera_id))
            f.write(im.name.encode('utf-8') + b'\x00')
            obs = np.zeros(len(im.xys), _OBS)
            obs['x'], obs['y'], obs['id'] = im.xys[:, 0], im.xys[:, 1], im.point3D_ids
            f.write(struct.pack('<Q', len(obs)))
            f.write(obs.tobytes())


def write_points3D_binary(points: ColmapPoints, path: PathLike) -> None:  # noqa: N802
    with open(path, 'wb') as f:
        _write_points_binary(points, f)


def _write_points_binary(points: ColmapPoints, f: BinaryIO) -> None:
    f.write(struct.pack('<Q', len(points)))
    for i in range(len(points)):
        track = np.asarray(points.tracks[i], dtype='<i4').reshape(-1, 2)
        f.write(struct.pack('<Q3d3BdQ', int(points.ids[i]), *map(float, points.xyz[i]),
                            *map(int, points.rgb[i]), float(points.errors[i]), len(track)))
        f.write(track.tobytes())


# ---------------------------------------------------------------------------------------------
# text
def _data_lines(path: Path, keep_empty: bool = False) -> list[str]:
    """Lines of a COLMAP text file without comments (optionally keeping empty lines)."""
    if not path.is_file():
        raise ColmapFormatError(f'{path}: file not found')
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if not ln.startswith('#') and (keep_empty or ln)]


def read_cameras_text(path: PathLike) -> dict[int, ColmapCamera]:
    cams = {}
    for ln in _data_lines(Path(path)):
        tok = ln.split()
        try:
            cam_id, model, width, height = int(tok[0]), tok[1], int(tok[2]), int(tok[3])
            params = np.array([float(v) for v in tok[4:]])
        except (IndexError, ValueError) as e:
            raise ColmapFormatError(f'{path}: malformed camera line {ln!r}') from e
        if model in MODEL_BY_NAME and len(params) != MODEL_BY_NAME[model].num_params:
            raise ColmapFormatError(f'{path}: camera {cam_id} ({model}) has {len(params)} '
                                    f'parameters, expected {MODEL_BY_NAME[model].num_params}')
        cams[cam_id] = ColmapCamera(cam_id, model, width, height, params)
    return cams


def read_images_text(path: PathLike) -> dict[int, ColmapImage]:
    lines = _data_lines(Path(path), keep_empty=True)
    while lines and not lines[-1]:
        lines.pop()
    # skip blank lines that are not a points line (points follow their image line directly)
    images, i = {}, 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        tok = lines[i].split(maxsplit=9)
        try:
            im_id, cam_id = int(tok[0]), int(tok[8])
            qvec = np.array([float(v) for v in tok[1:5]])
            tvec = np.array([float(v) for v in tok[5:8]])
            name = tok[9]
            pts = lines[i + 1].split() if i + 1 < len(lines) else []
            arr = np.array([float(v) for v in pts]).reshape(-1, 3)
        except (IndexError, ValueError) as e:
            raise ColmapFormatError(f'{path}: malformed image entry {lines[i]!r}') from e
        images[im_id] = ColmapImage(im_id, qvec, tvec, cam_id, name, arr[:, :2].copy(),
                                    arr[:, 2].astype(np.int64))
        i += 2
    return images


def read_points3D_text(path: PathLike) -> ColmapPoints:  # noqa: N802
    lines = _data_lines(Path(path))
    n = len(lines)
    ids = np.zeros(n, np.int64)
    xyz, rgb, err = np.zeros((n, 3)), np.zeros((n, 3), np.uint8), np.zeros(n)
    tracks = []
    for i, ln in enumerate(lines):
        tok = ln.split()
        try:
            ids[i], xyz[i], err[i] = int(tok[0]), [float(v) for v in tok[1:4]], float(tok[7])
            rgb[i] = [int(v) for v in tok[4:7]]
            tracks.append(np.array([int(v) for v in tok[8:]], np.int32).reshape(-1, 2))
        except (IndexError, ValueError) as e:
            raise ColmapFormatError(f'{path}: malformed point line {ln[:80]!r}') from e
    return ColmapPoints(ids, xyz, rgb, err, tracks)


def _f(x: float) -> str:
    return repr(float(x))  # shortest string that round-trips the float64 exactly


def write_cameras_text(cameras: dict[int, ColmapCamera], path: PathLike) -> None:
    out = ['# Camera list with one line of data per camera:',
           '#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]',
           f'# Number of cameras: {len(cameras)}']
    out += [' '.join([str(c.id), c.model, str(c.width), str(c.height), *map(_f, c.params)])
            for c in cameras.values()]
    Path(path).write_text('\n'.join(out) + '\n')


def write_images_text(images: dict[int, ColmapImage], path: PathLike) -> None:
    out = ['# Image list with two lines of data per image:',
           '#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME',
           '#   POINTS2D[] as (X, Y, POINT3D_ID)', f'# Number of images: {len(images)}']
    for im in images.values():
        out.append(' '.join([str(im.id), *map(_f, im.qvec), *map(_f, im.tvec),
                             str(im.camera_id), im.name]))
        out.append(' '.join(f'{_f(x)} {_f(y)} {int(p)}'
                            for (x, y), p in zip(im.xys, im.point3D_ids)))
    Path(path).write_text('\n'.join(out) + '\n')


def write_points3D_text(points: ColmapPoints, path: PathLike) -> None:  # noqa: N802
    out = ['# 3D point list with one line of data per point:',
           '#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)',
           f'# Number of points: {len(points)}']
    for i in range(len(points)):
        track = ' '.join(str(int(v)) for v in np.asarray(points.tracks[i]).reshape(-1))
        out.append(' '.join([str(int(points.ids[i])), *map(_f, points.xyz[i]),
                             *(str(int(c)) for c in points.rgb[i]), _f(points.errors[i]), track]))
    Path(path).write_text('\n'.join(out) + '\n')


# ---------------------------------------------------------------------------------------------
# whole models
def detect_model_format(path: PathLike) -> str:
    """'.bin' or '.txt' depending on which complete model is in directory ``path``."""
    path = Path(path)
    for ext in ('.bin', '.txt'):
        if all((path / f'{n}{ext}').is_file() for n in ('cameras', 'images')):
            return ext
    raise ColmapFormatError(
        f'{path}: no COLMAP model (expected cameras.bin + images.bin [+ points3D.bin] or the '
        '.txt equivalents)')


def read_model(path: PathLike, ext: str | None = None
               ) -> tuple[dict[int, ColmapCamera], dict[int, ColmapImage], ColmapPoints]:
    """Read ``cameras``, ``images`` and (if present) ``points3D`` from directory ``path``."""
    path = Path(path)
    ext = ext or detect_model_format(path)
    if ext == '.bin':
        cams = read_cameras_binary(path / 'cameras.bin')
        images = read_images_binary(path / 'images.bin')
        pts_file, reader = path / 'points3D.bin', read_points3D_binary
    elif ext == '.txt':
        cams = read_cameras_text(path / 'cameras.txt')
        images = read_images_text(path / 'images.txt')
        pts_file, reader = path / 'points3D.txt', read_points3D_text
    else:
        raise ValueError(f"ext must be '.bin' or '.txt', got {ext!r}")
    points = reader(pts_file) if pts_file.is_file() else empty_points()
    return cams, images, points


def write_model(cameras: dict[int, ColmapCamera], images: dict[int, ColmapImage],
                points: ColmapPoints | None, path: PathLike, ext: str = '.bin') -> None:
    """Write a model to directory ``path`` (created) in binary or text format."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    points = empty_points() if points is None else points
    if ext == '.bin':
        write_cameras_binary(cameras, path / 'cameras.bin')
        write_images_binary(images, path / 'images.bin')
        write_points3D_binary(points, path / 'points3D.bin')
    elif ext == '.txt':
        write_cameras_text(cameras, path / 'cameras.txt')
        write_images_text(images, path / 'images.txt')
        write_points3D_text(points, path / 'points3D.txt')
    else:
        raise ValueError(f"ext must be '.bin' or '.txt', got {ext!r}")
