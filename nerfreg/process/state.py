"""Resumability: each finished stage leaves a marker holding the fingerprint of its inputs.

Markers live in ``SCENE/colmap/stages.json``. A stage is reused when its marker's
fingerprint equals the one computed now; fingerprints chain (each includes the previous
stage's), so redoing a stage redoes everything after it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..utils.fileio import atomic_write_text

STATE_FILE = 'stages.json'


def fingerprint(*parts: Any) -> str:
    """Short stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def files_fingerprint(folder: Path, names: list[str]) -> str:
    """Hash of the names, sizes and modification times of ``folder/name`` files."""
    stats = []
    for name in names:
        st = os.stat(folder / name)
        stats.append((name, st.st_size, st.st_mtime_ns))
    return fingerprint(str(folder.resolve()), stats)


class StageState:
    """Read/write the stage markers of one work folder."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / STATE_FILE
        self.stages: dict[str, dict] = {}
        if self.path.is_file():
            try:
                self.stages = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self.stages = {}  # unreadable markers only cost a rerun

    def done(self, stage: str, fp: str) -> dict | None:
        """The marker of ``stage`` if it finished with fingerprint ``fp``, else None."""
        rec = self.stages.get(stage)
        return rec if rec and rec.get('fingerprint') == fp else None

    def finish(self, stage: str, fp: str, seconds: float, **info: Any) -> None:
        """Record ``stage`` as finished (written atomically)."""
        self.stages[stage] = dict(fingerprint=fp, seconds=round(seconds, 2), **info)
        self._write()

    def forget(self, stage: str) -> None:
        """Drop the marker of ``stage`` before it is redone."""
        if self.stages.pop(stage, None) is not None:
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.stages, indent=2))
