"""Checking the input photos before anything is written: listing, decoding, counting."""

from __future__ import annotations

from pathlib import Path

from nerfreg.datasets.base import DatasetError, natural_key
from nerfreg.datasets.image_io import IMAGE_EXTS, read_image

from .errors import ProcessError

#: Fewer views than this cannot make a reconstruction (two views give no check of the poses).
MIN_IMAGES = 3
_EXTS = {e.lower() for e in IMAGE_EXTS}


def list_images(folder: Path) -> list[str]:
    """Natural-sorted names of the image files directly inside ``folder``."""
    if not folder.exists():
        raise ProcessError(f'input folder {folder} does not exist; pass the folder that '
                           'holds your photos.')
    if not folder.is_dir():
        raise ProcessError(f'{folder} is not a folder; use `nerfreg-process video {folder}` '
                           'for a video, or pass the folder that holds your photos.')
    names = [p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _EXTS]
    if not names:
        subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir())
        hint = (f' It has sub-folders ({", ".join(subdirs[:3])}): pass the one with the '
                'photos.' if subdirs else '')
        raise ProcessError(f'input folder {folder} contains no images '
                           f'({", ".join(sorted(_EXTS))}).{hint}')
    return sorted(names, key=natural_key)


def check_images(folder: Path, names: list[str]) -> dict[str, tuple[int, int]]:
    """Decode every image; return ``{name: (width, height)}``.

    Raises :class:`ProcessError` naming the first corrupt image, or when there are fewer
    than :data:`MIN_IMAGES`.
    """
    if len(names) < MIN_IMAGES:
        raise ProcessError(
            f'{folder} has only {len(names)} image(s) ({", ".join(names)}); a reconstruction '
            f'needs at least {MIN_IMAGES} overlapping photos, ideally 30 or more taken all '
            'around the object with 60-80% overlap between neighbours.')
    sizes = {}
    for name in names:
        try:
            rgb, _ = read_image(folder / name)
        except DatasetError as exc:
            raise ProcessError(f'image {folder / name} cannot be read ({exc}); delete or '
                               're-export it, then run the command again.') from exc
        sizes[name] = (rgb.shape[1], rgb.shape[0])
    return sizes
