"""The one exception of ``nerfreg-process`` and the lazy import of pycolmap."""

from __future__ import annotations

from types import ModuleType

#: pycolmap's 4.x API (options objects, ``Database.open``, ``Device``) is what we call.
MIN_MAJOR = 4


class ProcessError(RuntimeError):
    """A problem with the input or the reconstruction that the user can fix.

    The message names the culprit (a file, a stage) and says what to do; the command line
    prints it alone, without a traceback.
    """


def import_pycolmap() -> ModuleType:
    """Import pycolmap, or raise a :class:`ProcessError` telling how to install it."""
    try:
        import pycolmap
    except ImportError as exc:
        raise ProcessError(
            'nerfreg-process needs pycolmap, an optional dependency that is not installed '
            f'({exc}). Install it with:  pip install "nerfreg[colmap]"  (or pip install '
            'pycolmap).') from exc
    version = getattr(pycolmap, '__version__', '0')
    if int(version.split('.')[0]) < MIN_MAJOR:
        raise ProcessError(f'nerfreg-process needs pycolmap {MIN_MAJOR}.x or newer (its API '
                           f'changed in 4.0), found {version}: pip install -U "pycolmap>=4.2"')
    return pycolmap
