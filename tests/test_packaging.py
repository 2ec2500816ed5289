"""What ``pip install nerfreg`` asks for: one OpenCV build, the one mmengine already requires."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _names(lines: list[str]) -> set[str]:
    """Distribution names of requirement lines (comments, versions and markers dropped)."""
    out = set()
    for line in lines:
        line = line.split('#')[0].split(';')[0].strip()
        if line:
            out.add(re.split(r'[<>=!~\[ ]', line, maxsplit=1)[0].lower().replace('_', '-'))
    return out


def test_one_opencv_build_shared_with_mmengine():
    files = sorted((REPO / 'requirements').glob('*.txt'))
    ours = {f.name: {n for n in _names(f.read_text().splitlines()) if n.startswith('opencv')}
            for f in files}
    theirs = {n for n in _names(importlib.metadata.requires('mmengine') or [])
              if n.startswith('opencv')}
    assert len(theirs) == 1, theirs  # mmengine's choice (opencv-python today)
    assert ours['runtime.txt'] == theirs
    assert all(names <= theirs for names in ours.values()), ours  # no second build anywhere
    assert 'headless' not in (REPO / 'setup.py').read_text()
