"""Disk cache of derived images (downscaled, undistorted), kept outside the user's data.

Entries live in ``<cache root>/images/<key[:2]>/<key>.npy`` as raw uint8 arrays (lossless,
no decoder needed). The key hashes the source file's identity (absolute path, size,
modification time) and the parameters of the derivation, so an edited photo or a new
parameter gives a new entry; a stale one is simply never read again. Writes go to a temp
file in the same folder and are renamed into place, so an interrupted run or several
processes at once never leave a partial entry.

The cache root is, in order: the ``cache_dir`` argument, ``$NERFREG_CACHE_DIR``,
``$NERFREG_CACHE`` (older name) or ``~/.cache/nerfreg``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Union

import numpy as np
from mmengine.logging import print_log

from ..utils.fileio import atomic_output

PathLike = Union[str, Path]
#: Bump when a derivation changes, so old entries are no longer read.
CACHE_VERSION = 1


def cache_root(cache_dir: PathLike | None = None) -> Path:
    """The nerfreg cache folder (not created here)."""
    if cache_dir is None:
        cache_dir = (os.environ.get('NERFREG_CACHE_DIR') or os.environ.get('NERFREG_CACHE')
                     or '~/.cache/nerfreg')
    return Path(cache_dir).expanduser()


def file_identity(path: PathLike) -> tuple[str, int, int]:
    """(absolute path, size in bytes, mtime in ns) of a source file."""
    path = Path(path)
    st = path.stat()
    return os.path.abspath(path), int(st.st_size), int(st.st_mtime_ns)


class ImageCache:
    """Lossless array cache keyed by (source file identity, derivation parameters).

    ``hits`` / ``misses`` / ``writes`` count lookups since construction. With
    ``enabled=False`` nothing is read or written (every lookup is a miss).
    """

    def __init__(self, cache_dir: PathLike | None = None, enabled: bool = True) -> None:
        self.root = cache_root(cache_dir) / 'images'
        self.enabled = bool(enabled)
        self.hits = self.misses = self.writes = 0
        self._warned = False

    def key(self, source: PathLike, **params: Any) -> str:
        ident = dict(version=CACHE_VERSION, source=file_identity(source), params=params)
        blob = json.dumps(ident, sort_keys=True, default=_jsonable)
        return hashlib.sha256(blob.encode()).hexdigest()[:40]

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f'{key}.npy'

    def get(self, key: str) -> np.ndarray | None:
        """The array stored under ``key``, or None (absent, unreadable or disabled)."""
        if not self.enabled:
            self.misses += 1
            return None
        try:
            arr = np.load(self.path(key), allow_pickle=False)
        except (OSError, ValueError, EOFError):  # absent, or a damaged entry: recompute
            self.misses += 1
            return None
        self.hits += 1
        return arr

    def put(self, key: str, array: np.ndarray) -> None:
        """Store ``array`` atomically; a cache that cannot be written only warns once."""
        if not self.enabled:
            return
        target = self.path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(target, durable=False) as tmp, open(tmp, 'wb') as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            self.writes += 1
        except OSError as e:
            if not self._warned:
                self._warned = True
                print_log(f'nerfreg image cache {self.root} is not writable ({e}); derived '
                          'images are kept in memory only. Set NERFREG_CACHE_DIR or the '
                          "dataset's cache_dir to a writable folder.", logger='current',
                          level=logging.WARNING)

    def stats(self) -> dict[str, int]:
        return dict(hits=self.hits, misses=self.misses, writes=self.writes)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f'cannot key the cache on {type(value).__name__}')
