"""Turn user-caused failures into one clear paragraph; the traceback goes to the log."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Callable

from ..engine.checkpoint import CheckpointError
from ..engine.errors import NonFiniteError, TrainingInterrupted
from ..registry import UnknownTypeError

USER_ERRORS = (UnknownTypeError, CheckpointError, NonFiniteError, FileNotFoundError,
               PermissionError, ValueError, KeyError, TypeError, ImportError, OSError,
               MemoryError, RuntimeError)


def run_with_clear_errors(fn: Callable[[], int]) -> int:
    """Run ``fn``; on a user-caused error print ``error: <message>`` and return 1."""
    try:
        return fn()
    except TrainingInterrupted as exc:
        print(f'Interrupted at step {exc.step}; checkpoint saved to {exc.checkpoint}.',
              file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        _log_traceback_to_files()
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        if isinstance(exc, MemoryError):
            message = ('out of memory. Reduce data.downscale, the number of Gaussians '
                       '(optimizer.strategy.cap_max) or the image size.')
        print(f'error: {type(exc).__name__}: {message}', file=sys.stderr)
        print('(the full traceback is in the log file of the work dir, if one was created)',
              file=sys.stderr)
        return 1


def _log_traceback_to_files() -> None:
    from mmengine.logging import MMLogger
    tb = traceback.format_exc()
    for name in list(MMLogger._instance_dict):
        logger = MMLogger._instance_dict[name]
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.stream.write(tb)
                handler.flush()
