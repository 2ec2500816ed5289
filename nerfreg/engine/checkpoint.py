"""Checkpoint files: atomic writes, versioned format, explicit ``weights_only`` loads.

mmengine 0.10's loader calls ``torch.load`` without ``weights_only``, which torch >= 2.6
refuses for its own checkpoints, so nerfreg reads and writes checkpoints itself.
"""

from __future__ import annotations

import errno
import io
import os  # noqa: F401  (kept: tests fault-inject writes through checkpoint.os)
from pathlib import Path
from typing import Any

import torch

from ..utils.fileio import atomic_write_bytes

CHECKPOINT_FORMAT = 'nerfreg-checkpoint'
CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or read; the message names the file and the fix."""


def save_checkpoint(checkpoint: dict, path: str | Path) -> Path:
    """Serialise ``checkpoint`` to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    checkpoint = dict(checkpoint)
    checkpoint['format'] = CHECKPOINT_FORMAT
    checkpoint['format_version'] = CHECKPOINT_VERSION
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        reason = 'the disk is full' if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        raise CheckpointError(
            f'Could not write checkpoint {path}: {reason}. Existing checkpoints are untouched; '
            'free space or choose another --work-dir, then resume.') from exc
    return path


def load_checkpoint(path: str | Path, map_location: Any = 'cpu',
                    weights_only: bool = True) -> dict:
    """Read a nerfreg checkpoint; ``weights_only=False`` is the explicit unsafe path."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'Checkpoint {path} does not exist. Check the path, or list '
                              'the work dir for iter_*.pth files.')
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:
        hint = ('It may be truncated (an interrupted copy) or not a torch file.'
                if weights_only is False or 'weights_only' not in str(exc) else
                'It holds objects outside the safe set; load it with weights_only=False only '
                'if you trust its source.')
        raise CheckpointError(f'Cannot read checkpoint {path}: {hint} ({type(exc).__name__}: '
                              f'{str(exc).splitlines()[0] if str(exc) else ""})') from exc
    if not isinstance(checkpoint, dict) or checkpoint.get('format') != CHECKPOINT_FORMAT:
        raise CheckpointError(f'{path} is not a nerfreg checkpoint (no format tag). Pass a file '
                              'written by nerfreg, or use load_from with a PLY/state dict.')
    version = checkpoint.get('format_version')
    if version is None or version > CHECKPOINT_VERSION:
        raise CheckpointError(f'{path} has checkpoint format version {version}; this nerfreg '
                              f'reads up to {CHECKPOINT_VERSION}. Upgrade nerfreg.')
    return checkpoint
