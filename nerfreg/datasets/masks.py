"""Per-image loss masks: 255 = use the pixel, 0 = ignore it (people, sky, a moving object).

Sources: a COLMAP scene's mask folder (``ColmapDataset(masks_dir='masks')``: the image's
file name, with or without its own extension, plus any common image extension), the
``mask_path`` of an instant-ngp / nerfstudio frame, or a Blender image's alpha. A mask must
have the size of its original image; it is resized (area average) with the image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .base import DatasetError

#: Extensions tried for a mask file.
MASK_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.PNG', '.JPG')


def find_mask(folder: Path, name: str) -> Path:
    """The mask of image ``name`` in ``folder`` (``a.jpg`` -> ``a.jpg``, ``a.png``,
    ``a.jpg.png``, ...); a clear error when there is none."""
    rel = Path(name)
    candidates = [folder / rel] + [folder / rel.with_suffix(e) for e in MASK_EXTENSIONS] + [
        folder / (str(rel) + e) for e in MASK_EXTENSIONS]
    for path in candidates:
        if path.is_file():
            return path
    raise DatasetError(f'no mask for image {name} in {folder} (tried {candidates[0].name}, '
                       f'{candidates[1].name}, {candidates[-len(MASK_EXTENSIONS)].name}, ...); '
                       'every training image needs one, with the same file name')


def read_mask(path: Path) -> np.ndarray:
    """uint8 ``[H,W]``: the alpha channel of an RGBA file, else its grey value."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f'mask {path} cannot be read as an image')
    if raw.dtype == np.uint16:
        raw = (raw // 257).astype(np.uint8)
    if raw.ndim == 3:
        raw = raw[..., 3] if raw.shape[2] == 4 else cv2.cvtColor(raw[..., :3],
                                                                 cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(raw.astype(np.uint8))


def load_mask(path: Path, image: Path | str, image_size: tuple[int, int],
              out_size: tuple[int, int]) -> np.ndarray:
    """Mask of ``image`` (original size ``image_size`` = (w, h)) at ``out_size`` (w, h),
    uint8 ``[H,W,1]``; a size mismatch names both files and both sizes."""
    mask = read_mask(path)
    h, w = mask.shape
    if (w, h) != tuple(image_size):
        raise DatasetError(f'mask {path} is {w}x{h} but its image {image} is '
                           f'{image_size[0]}x{image_size[1]}: a mask must have the size of its '
                           'image')
    if (w, h) != tuple(out_size):
        mask = cv2.resize(mask, tuple(int(v) for v in out_size), interpolation=cv2.INTER_AREA)
    return mask[..., None]
