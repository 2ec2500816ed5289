"""The one exception of ``nerfreg-process`` and the lazy import of pycolmap."""

from __future__ import annotations

from types import ModuleType


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
    return pycolmap
