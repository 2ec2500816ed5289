"""Exceptions the trainer raises for conditions a user must act on."""

from __future__ import annotations

from pathlib import Path


class NonFiniteError(RuntimeError):
    """Too many consecutive steps with a NaN/Inf loss or gradient."""


class TrainingInterrupted(SystemExit):
    """SIGINT/SIGTERM stopped training after writing a checkpoint (exit status 130)."""

    def __init__(self, step: int, checkpoint: Path | str) -> None:
        super().__init__(130)
        self.step = step
        self.checkpoint = Path(checkpoint)
