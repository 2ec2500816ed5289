"""Image files (the one reader and writer), resizing and undistortion (OpenCV); derived
images are kept in ``ImageCache``."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import cv2
import numpy as np

from nerfreg.cameras import Cameras
from nerfreg.utils.fileio import atomic_write_bytes

from .base import DatasetError
from .cache import ImageCache

PathLike = Union[str, Path]
IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.JPG', '.JPEG', '.PNG', '.webp', '.bmp', '.tif', '.tiff')
_JPEG = ('.jpg', '.jpeg')


def _check_jpeg_complete(path: Path) -> None:
    # OpenCV decodes truncated JPEGs partially (grey bottom) with only a libjpeg warning, so
    # check the end-of-image marker ourselves.
    with open(path, 'rb') as f:
        head = f.read(2)
        f.seek(max(0, path.stat().st_size - 4096))
        tail = f.read().rstrip(b'\x00\r\n ')
    if head != b'\xff\xd8':
        raise DatasetError(f'{path}: not a JPEG file (bad header)')
    if b'\xff\xd9' not in tail[-32:]:
        raise DatasetError(f'{path}: truncated or corrupt JPEG (no end-of-image marker)')


def read_image(path: PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode an image with OpenCV -> (RGB uint8 [H,W,3], alpha uint8 [H,W,1] or None).

    JPEGs go through ``IMREAD_COLOR`` (applies the EXIF orientation); other formats through
    ``IMREAD_UNCHANGED`` to keep alpha. 16-bit images are reduced to 8 bits.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f'{path}: image file not found')
    is_jpeg = path.suffix.lower() in _JPEG
    if is_jpeg:
        _check_jpeg_complete(path)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise DatasetError(f'{path}: cannot decode image (corrupt, truncated or unsupported)')
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DatasetError(f'{path}: unsupported image dtype {img.dtype}')
    if img.ndim == 2:
        img = img[..., None]
    channels = img.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2)), None
    if channels == 2:  # grey + alpha
        return np.ascontiguousarray(np.repeat(img[..., :1], 3, axis=2)), img[..., 1:].copy()
    rgb = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    alpha = img[..., 3:4].copy() if channels == 4 else None
    return rgb, alpha


def write_image(path: PathLike, rgb: np.ndarray, alpha: np.ndarray | None = None) -> None:
    """Write uint8 RGB ``[H,W,3]`` (+ alpha ``[H,W,1]``) in the format of the suffix (PNG
    lossless, JPEG at quality 100), atomically: an interrupted run leaves no broken file.

    nerfreg's one image file writer (``read_image`` is the one reader); float images go
    through ``nerfreg.visualization.images.to_uint8`` first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if alpha is not None:
        img = np.concatenate([img, alpha.reshape(img.shape[:2] + (1,))], axis=2)
    params = [cv2.IMWRITE_JPEG_QUALITY, 100] if path.suffix.lower() in _JPEG else []
    ok, buf = cv2.imencode(path.suffix if path.suffix else '.png', img, params)
    if not ok:
        raise DatasetError(f'{path}: cannot encode image')
    atomic_write_bytes(path, buf.tobytes())


def resize_area(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with ``cv2.INTER_AREA`` (pixel centres at +0.5, see ``Cameras.resized``)."""
    if img.shape[1] == width and img.shape[0] == height:
        return img
    out = cv2.resize(img, (int(width), int(height)), interpolation=cv2.INTER_AREA)
    return out.reshape(int(height), int(width), *img.shape[2:])


def composite(rgb: np.ndarray, alpha: np.ndarray | None, background: np.ndarray) -> np.ndarray:
    """Blend RGB over ``background`` (float RGB 0..1) using ``alpha`` (uint8); uint8 result."""
    if alpha is None:
        return rgb
    a = alpha.astype(np.float32) / 255.0
    out = rgb.astype(np.float32) * a + (background.astype(np.float32) * 255.0) * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def scale_tag(factor: float) -> str:
    """Folder suffix of a downscale factor: 4 -> '4', 1.5 -> '1.5'."""
    return str(int(factor)) if float(factor).is_integer() else f'{factor:g}'


def _pack(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    return rgb if alpha is None else np.concatenate([rgb, alpha.reshape(rgb.shape[:2] + (1,))], 2)


def _unpack(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        raise DatasetError(f'cached image has shape {arr.shape} / {arr.dtype}')
    return np.ascontiguousarray(arr[..., :3]), (arr[..., 3:].copy() if arr.shape[2] == 4
                                                 else None)


def _cached(cache: ImageCache | None, key: str | None) -> tuple[np.ndarray,
                                                                np.ndarray | None] | None:
    if cache is None or key is None:
        return None
    arr = cache.get(key)
    if arr is None:
        return None
    try:
        return _unpack(arr)
    except DatasetError:  # a foreign or damaged entry: recompute and overwrite it
        return None


def _source(root: Path, image_dir: str, name: str, factor: float, prescaled: bool
            ) -> tuple[Path, float]:
    """(file to read, downscale still to apply): a user-made ``<image_dir>_<factor>`` copy
    when ``prescaled`` and it exists, else the original."""
    if factor != 1 and prescaled:
        folder = image_dir if image_dir not in ('', '.') else 'downscaled'
        premade = root / f'{folder}_{scale_tag(factor)}' / name
        if premade.is_file():
            return premade, 1.0
    return root / image_dir / name, float(factor)


def load_downscaled(root: Path, image_dir: str, name: str, factor: float,
                    cache: ImageCache | None = None, prescaled: bool = False
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Image ``root/image_dir/name`` downscaled by ``factor`` (INTER_AREA of the original).

    The result is read from / written to ``cache`` (never beside the data). With
    ``prescaled=True`` a user-made ``root/<image_dir>_<factor>/name`` (e.g. COLMAP's
    ``images_4``) is used as it is when present.
    """
    src, factor = _source(root, image_dir, name, factor, prescaled)
    if factor == 1:
        return read_image(src)
    if not src.is_file():
        raise DatasetError(f'{src}: image file not found')
    key = cache.key(src, op='downscale', factor=float(factor)) if cache is not None else None
    hit = _cached(cache, key)
    if hit is not None:
        return hit
    rgb, alpha = read_image(src)
    h, w = rgb.shape[:2]
    w2, h2 = max(1, round(w / factor)), max(1, round(h / factor))
    rgb = resize_area(rgb, w2, h2)
    alpha = None if alpha is None else resize_area(alpha, w2, h2)
    if cache is not None:
        cache.put(key, _pack(rgb, alpha))
    return rgb, alpha


# ---------------------------------------------------------------------------------------------
# undistortion
def undistort_intrinsics(K: np.ndarray, dist: np.ndarray, width: int, height: int,
                         fisheye: bool = False) -> np.ndarray:
    """Pinhole K [3,3] (pixel centres at +0.5) of the undistorted image of the same size.

    The new K keeps only valid pixels (``alpha=0`` / ``balance=0``), as nerfstudio and 3DGS'
    converters do, so no black borders are learned.
    """
    k_cv = _to_cv(K)
    if fisheye:
        new = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
            k_cv, dist[:4].reshape(4, 1), (width, height), np.eye(3), balance=0.0)
    else:
        new, _ = cv2.getOptimalNewCameraMatrix(k_cv, dist, (width, height), 0.0,
                                               (width, height))
    return _from_cv(new)


def undistortion_maps(K: np.ndarray, dist: np.ndarray, new_K: np.ndarray, width: int,
                      height: int, fisheye: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` tables taking an image with (K, dist) to the pinhole ``new_K``."""
    if fisheye:
        return cv2.fisheye.initUndistortRectifyMap(_to_cv(K), dist[:4].reshape(4, 1), np.eye(3),
                                                   _to_cv(new_K), (width, height), cv2.CV_32FC1)
    return cv2.initUndistortRectifyMap(_to_cv(K), dist, np.eye(3), _to_cv(new_K),
                                       (width, height), cv2.CV_32FC1)


def undistort_image(img: np.ndarray, K: np.ndarray, dist: np.ndarray, new_K: np.ndarray,
                    fisheye: bool = False,
                    maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Remap ``img`` taken with (K, dist) to the pinhole ``new_K`` (same size)."""
    h, w = img.shape[:2]
    mx, my = maps if maps is not None else undistortion_maps(K, dist, new_K, w, h, fisheye)
    out = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(img.shape)


def _to_cv(K: np.ndarray) -> np.ndarray:
    """Our K (pixel centre at +0.5) -> OpenCV's K (pixel centre at integer coordinates)."""
    k = np.array(K, dtype=np.float64)
    k[0, 2] -= 0.5
    k[1, 2] -= 0.5
    return k


def _from_cv(K: np.ndarray) -> np.ndarray:
    k = np.array(K, dtype=np.float64)
    k[0, 2] += 0.5
    k[1, 2] += 0.5
    return k


# ---------------------------------------------------------------------------------------------
# whole view sets
def load_views(root: Path, image_dir: str, names: list[str], cameras: Cameras,
               downscale: float = 1.0, fisheye: list[bool] | None = None,
               cache: ImageCache | None = None, prescaled: bool = False
               ) -> tuple[Cameras, list[np.ndarray], list[np.ndarray | None]]:
    """Decode the views, downscale them, fit intrinsics to the real image sizes and undistort.

    ``cameras`` are at the size declared by the metadata, with ``dist`` (OpenCV order) or None.
    Returns pinhole cameras (``dist=None``) matching the returned uint8 images. Remap tables
    are computed once per distinct camera, and only when an undistorted image is not in
    ``cache`` yet. ``prescaled``: see ``load_downscaled``.
    """
    if len(names) != len(cameras):
        raise ValueError('load_views: names and cameras differ in length')
    fisheye = fisheye or [False] * len(names)
    dist_all = cameras.dist.double().cpu().numpy() if cameras.dist is not None else None
    declared_K = cameras.Ks().double().cpu().numpy()
    maps: dict = {}
    out_cams, images, alphas = [], [], []
    for i, name in enumerate(names):
        needs = dist_all is not None and bool(np.any(dist_all[i] != 0))
        hit, ukey = None, None
        src, factor = _source(root, image_dir, name, downscale, prescaled)
        if needs and cache is not None and src.is_file():
            ukey = cache.key(src, op='undistort', factor=factor, K=declared_K[i],
                             dist=dist_all[i], fisheye=bool(fisheye[i]))
            hit = _cached(cache, ukey)
        if hit is not None:
            rgb, alpha = hit
        else:  # the undistorted result is cached, so the downscaled step need not be
            rgb, alpha = load_downscaled(root, image_dir, name, downscale,
                                         None if needs else cache, prescaled)
        h, w = rgb.shape[:2]
        w0, h0 = int(cameras.width[i]), int(cameras.height[i])
        if abs(w / w0 - h / h0) > 0.02 * max(w / w0, h / h0) + 1.5 / min(w, h):
            scaled = f' after downscale {downscale:g}' if downscale != 1 else ''
            raise DatasetError(f'{root / image_dir / name}: image is {w}x{h}{scaled} but the '
                               f'metadata says {w0}x{h0}: the aspect ratio differs (rotated by '
                               'EXIF orientation, or the wrong file?)')
        cam = cameras[i].resized(w, h)
        if needs:
            k_old = cam.Ks()[0].double().numpy()
            dist = dist_all[i]
            mkey = (tuple(np.round(k_old.ravel(), 6)), tuple(dist), w, h, fisheye[i])
            if mkey not in maps:  # once per distinct camera
                maps[mkey] = [undistort_intrinsics(k_old, dist, w, h, fisheye[i]), None]
            k_new = maps[mkey][0]
            if hit is None:
                if maps[mkey][1] is None:
                    maps[mkey][1] = undistortion_maps(k_old, dist, k_new, w, h, fisheye[i])
                remap = maps[mkey][1]
                rgb = undistort_image(rgb, k_old, dist, k_new, fisheye[i], remap)
                if alpha is not None:
                    alpha = undistort_image(alpha, k_old, dist, k_new, fisheye[i], remap)
                if cache is not None:
                    cache.put(ukey, _pack(rgb, alpha))
            cam = Cameras(R=cam.R, t=cam.t, fx=float(k_new[0, 0]), fy=float(k_new[1, 1]),
                          cx=float(k_new[0, 2]), cy=float(k_new[1, 2]), width=w, height=h,
                          dist=None, names=cam.names)
        else:
            cam.dist = None
        out_cams.append(cam)
        images.append(rgb)
        alphas.append(alpha)
    return (Cameras.cat(out_cams) if out_cams else cameras[[]]), images, alphas
