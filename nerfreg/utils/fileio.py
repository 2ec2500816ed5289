"""File writes that never leave a half-written file, and writable-folder checks."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _default_mode(base: int) -> int:
    """``base`` (0o666 files, 0o777 folders) without the process umask, as ``open`` gives."""
    return base & ~_umask()


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    # read once: setting it to read it back is not thread-safe (the viewer runs threads)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temp file path beside ``path``; when the block succeeds, the temp file is
    renamed onto ``path``, so readers see the old file or the whole new one, never a part.

    Write the new content to the yielded path (by name: ``plyfile``, ``np.save``, ...). On
    an exception the temp file is removed and ``path`` is untouched. ``durable`` also
    fsyncs the file before and its folder after the rename (off for caches, where a lost
    entry only costs a recomputation).
    """
    path = Path(path)
    # '.<name>.XXXX.tmp' (tests and users recognise it); writers that go by the suffix
    # (cv2.imwrite, np.save by name) must be handed an open file instead
    fd, name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        # mkstemp makes 0600 files: keep the mode of the file replaced, else open()'s default
        mode = path.stat().st_mode & 0o7777 if path.is_file() else _default_mode(0o666)
        yield tmp
        os.chmod(tmp, mode)
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, durable) as tmp, os.fdopen(os.open(tmp, os.O_WRONLY), 'wb') as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str, durable: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_output`)."""
    atomic_write_bytes(path, text.encode('utf-8'), durable)


@contextmanager
def atomic_output_dir(path: str | Path) -> Iterator[Path]:
    """Yield a new empty folder beside ``path``; when the block succeeds it is renamed onto
    ``path`` (which must be absent or empty), so ``path`` appears complete or not at all.

    Raises ``FileExistsError`` when ``path`` is a non-empty folder at the rename (e.g. made
    by another process meanwhile). The temp folder is removed on every failure.
    """
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent))
    try:
        os.chmod(tmp, _default_mode(0o777))  # mkdtemp makes 0700 folders
        yield tmp
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if path.exists():
                raise FileExistsError(f'{path} appeared while it was being written') from exc
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_writable_dir(path: str | Path, what: str = 'work_dir',
                        fix: str = 'Pass a writable --work-dir.') -> Path:
    """Create ``path`` and check a file can be written there, else ``PermissionError``
    naming the folder and the fix."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix='.write_test'):
            pass
    except OSError as exc:
        raise PermissionError(f'{what} {path} is not writable ({exc.strerror}). {fix}') from exc
    return path
