"""Images for people: uint8 conversion, error maps, coloured depth, labelled comparison sheets.

Every function takes float images in [0, 1] (``[H,W,C]`` tensors or arrays) or uint8
arrays and returns uint8 RGB ``[H,W,3]`` numpy arrays, ready for
``nerfreg.datasets.image_io.write_image`` (the one image file writer) or
``Visualizer.add_image``.
"""

from __future__ import annotations

from typing import Sequence, Union

import cv2
import numpy as np
import torch

ImageLike = Union[np.ndarray, torch.Tensor]


def to_numpy(image: ImageLike) -> np.ndarray:
    """A CPU numpy array of ``image`` (a leading batch dimension of 1 is dropped)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    return image


def to_uint8(image: ImageLike) -> np.ndarray:
    """uint8 RGB ``[H,W,3]`` from float [0, 1] or uint8, 1 or 3 (or 4: alpha dropped) channels."""
    arr = to_numpy(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(np.nan_to_num(arr.astype(np.float64)) * 255.0), 0, 255)
        arr = arr.astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


def _float01(image: ImageLike) -> np.ndarray:
    arr = to_numpy(image)
    return arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)


def apply_colormap(values: np.ndarray, colormap: int = cv2.COLORMAP_TURBO) -> np.ndarray:
    """Colour a ``[H,W]`` float array in [0, 1] with an OpenCV colormap (uint8 RGB)."""
    gray = np.clip(np.rint(np.nan_to_num(values) * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(gray, colormap), cv2.COLOR_BGR2RGB)


def error_map(pred: ImageLike, target: ImageLike, max_error: float | None = None,
              colormap: int = cv2.COLORMAP_INFERNO) -> np.ndarray:
    """Per-pixel mean absolute error (over channels) coloured with ``colormap``.

    ``max_error`` maps to the top colour (default: the 99th percentile of the error, at
    least 1/255 so that a perfect render stays dark).
    """
    p, t = _float01(pred), _float01(target)
    err = np.abs(np.clip(p, 0, 1) - np.clip(t, 0, 1)).mean(axis=-1)
    if max_error is None:
        max_error = max(float(np.percentile(err, 99)) if err.size else 0.0, 1.0 / 255.0)
    return apply_colormap(err / max_error, colormap)


def colorize_depth(depth: ImageLike, alpha: ImageLike | None = None,
                   near: float | None = None, far: float | None = None,
                   colormap: int = cv2.COLORMAP_TURBO, inverse: bool = True,
                   background: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Colour a depth map ``[H,W]`` / ``[H,W,1]``.

    ``near``/``far`` default to the 1st/99th percentiles of the valid pixels (alpha > 0.5
    when given, finite and > 0). With ``inverse`` (default) near is bright, as disparity.
    Invalid pixels get ``background``.
    """
    d = to_numpy(depth).astype(np.float32)
    d = d[..., 0] if d.ndim == 3 else d
    valid = np.isfinite(d) & (d > 0)
    if alpha is not None:
        a = to_numpy(alpha).astype(np.float32)
        a = a[..., 0] if a.ndim == 3 else a
        valid &= a > 0.5
    values = d[valid]
    if near is None:
        near = float(np.percentile(values, 1)) if values.size else 0.0
    if far is None:
        far = float(np.percentile(values, 99)) if values.size else 1.0
    near, far = float(near), max(float(far), float(near) + 1e-6)
    if inverse:
        near_ = max(near, 1e-6)
        x = (1.0 / np.clip(d, near_, far) - 1.0 / far) / max(1.0 / near_ - 1.0 / far, 1e-12)
    else:
        x = (np.clip(d, near, far) - near) / (far - near)
    out = apply_colormap(x, colormap)
    out[~valid] = np.asarray(background, dtype=np.uint8)
    return out


def _label(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` with a dark strip above it holding ``text`` (scaled to the width)."""
    h, w = image.shape[:2]
    scale = float(np.clip(w / 320.0, 0.3, 1.0))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    strip_h = th + base + 6
    strip = np.full((strip_h, w, 3), 32, np.uint8)
    cv2.putText(strip, text, (3, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1,
                cv2.LINE_AA)
    return np.concatenate([strip, image], axis=0)


def _pad_to(image: np.ndarray, height: int, width: int, value: int = 0) -> np.ndarray:
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    out = np.full((height, width, 3), value, np.uint8)
    out[:h, :w] = image
    return out


def hconcat(images: Sequence[ImageLike], labels: Sequence[str] | None = None,
            gap: int = 2, gap_value: int = 255) -> np.ndarray:
    """Images side by side (uint8 RGB), optionally labelled, separated by ``gap`` pixels."""
    tiles = [to_uint8(im) for im in images]
    if labels is not None:
        tiles = [_label(t, str(lab)) for t, lab in zip(tiles, labels)]
    height = max(t.shape[0] for t in tiles)
    parts: list[np.ndarray] = []
    for i, tile in enumerate(tiles):
        if i and gap:
            parts.append(np.full((height, gap, 3), gap_value, np.uint8))
        parts.append(_pad_to(tile, height, tile.shape[1], gap_value))
    return np.concatenate(parts, axis=1)


def vconcat(rows: Sequence[np.ndarray], gap: int = 2, gap_value: int = 255) -> np.ndarray:
    """Rows (uint8 RGB) stacked vertically; narrower rows are padded on the right."""
    width = max(r.shape[1] for r in rows)
    parts: list[np.ndarray] = []
    for i, row in enumerate(rows):
        if i and gap:
            parts.append(np.full((gap, width, 3), gap_value, np.uint8))
        parts.append(_pad_to(row, row.shape[0], width, gap_value))
    return np.concatenate(parts, axis=0)


def comparison_row(pred: ImageLike, target: ImageLike, depth: ImageLike | None = None,
                   alpha: ImageLike | None = None, title: str | None = None,
                   labels: bool = True) -> np.ndarray:
    """``render | ground truth | error`` (``| depth`` when given) as one uint8 RGB image."""
    images = [to_uint8(pred), to_uint8(target), error_map(pred, target)]
    names = ['render', 'GT', 'error']
    if depth is not None:
        images.append(colorize_depth(depth, alpha))
        names.append('depth')
    if title:
        names[0] = f'{title}: render'
    return hconcat(images, names if labels else None)


def fit_width(image: np.ndarray, max_width: int) -> np.ndarray:
    """Downscale (area) so the width is at most ``max_width``."""
    h, w = image.shape[:2]
    if w <= max_width:
        return image
    new_h = max(1, round(h * max_width / w))
    return cv2.resize(image, (max_width, new_h), interpolation=cv2.INTER_AREA)


__all__ = ['apply_colormap', 'colorize_depth', 'comparison_row', 'error_map', 'fit_width',
           'hconcat', 'to_numpy', 'to_uint8', 'vconcat']
