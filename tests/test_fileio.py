"""One atomic-write helper family (``nerfreg.utils.fileio``) and no hand-rolled copies of it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from nerfreg.utils import fileio
from nerfreg.utils.fileio import atomic_output, atomic_output_dir, atomic_write_text

PKG = Path(__file__).resolve().parents[1] / 'nerfreg'


def test_atomic_output_renames_on_success_and_cleans_up_on_error(tmp_path):
    path = tmp_path / 'a.npy'
    with atomic_output(path) as tmp:
        assert tmp.parent == tmp_path and tmp != path and not path.exists()
        assert tmp.name.startswith('.a.npy.') and tmp.suffix == '.tmp'
        with open(tmp, 'wb') as f:
            np.save(f, np.arange(3))
    assert np.load(path).tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError), atomic_output(path, durable=False) as tmp:
        tmp.write_bytes(b'half')
        raise RuntimeError('writer failed')
    assert np.load(path).tolist() == [0, 1, 2]  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ['a.npy']  # no temp file left
    atomic_write_text(tmp_path / 'b.json', '{"ok": true}\n')
    assert (tmp_path / 'b.json').read_text() == '{"ok": true}\n'


def test_atomic_output_dir_publishes_whole_folders_only(tmp_path):
    target = tmp_path / 'scene'
    with pytest.raises(ValueError), atomic_output_dir(target) as tmp:
        (tmp / 'x.txt').write_text('partial')
        raise ValueError('generation failed')
    assert list(tmp_path.iterdir()) == []  # neither target nor temp folder
    target.mkdir()  # an empty folder is replaced
    with atomic_output_dir(target) as tmp:
        (tmp / 'x.txt').write_text('one')
    assert (target / 'x.txt').read_text() == 'one'
    with pytest.raises(FileExistsError, match='scene appeared'), atomic_output_dir(target) as tmp:
        (tmp / 'x.txt').write_text('two')
    assert (target / 'x.txt').read_text() == 'one'  # the existing folder wins, intact
    assert [p.name for p in tmp_path.iterdir()] == ['scene']


def test_no_hand_rolled_atomic_writes_in_nerfreg():
    """Temp-file-and-rename is written once, in utils/fileio.py; everything else calls it."""
    pattern = re.compile(r"os\.replace\(|\.replace\(path\)|os\.rename\(|suffix\('\.tmp'\)|"
                         r"name \+ '\.tmp'|mkstemp\(|mkdtemp\(")
    found = [f'{p.relative_to(PKG)}:{i}: {line.strip()}'
             for p in sorted(PKG.rglob('*.py')) if p.name != 'fileio.py'
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
    assert 'os.replace(' in Path(fileio.__file__).read_text()  # the pattern is real


def test_atomic_writes_give_ordinary_permissions(tmp_path):
    """Temp files are private (0600) while written; the published file is not."""
    import os
    fileio._umask.cache_clear()
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / 'new.txt', 'x')
        assert (tmp_path / 'new.txt').stat().st_mode & 0o777 == 0o644
        (tmp_path / 'kept.txt').write_text('x')
        os.chmod(tmp_path / 'kept.txt', 0o640)
        atomic_write_text(tmp_path / 'kept.txt', 'y')
        assert (tmp_path / 'kept.txt').stat().st_mode & 0o777 == 0o640
        with atomic_output_dir(tmp_path / 'folder') as tmp:
            (tmp / 'a').write_text('a')
        assert (tmp_path / 'folder').stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(mask)
        fileio._umask.cache_clear()
