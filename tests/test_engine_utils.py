"""Small engine helpers: the first-compile notice, atomic writes, writable-folder checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nerfreg.utils.fileio import atomic_write_bytes, ensure_writable_dir

REPO = Path(__file__).resolve().parents[1]


def test_compile_notice_and_clock_only_when_a_cached_kernel_really_compiles(tmp_path):
    (tmp_path / 'kernel_mod.py').write_text(textwrap.dedent('''
        import numba

        @numba.njit(cache=True)
        def total(x):
            return x.sum()

        @numba.njit  # not disk-cached: compiles every run, not announced
        def plain(x):
            return x.max()
    '''))
    script = textwrap.dedent(f'''
        import sys, numpy as np
        sys.path[:0] = [{str(REPO)!r}, {str(tmp_path)!r}]
        import time
        from nerfreg.utils.compile_notice import (announce_kernel_compiles, compile_seconds,
                                                   CompileFreeTimer)
        announce_kernel_compiles(lambda m: print('NOTICE', m))
        import kernel_mod
        kernel_mod.plain(np.ones(3))
        timer = CompileFreeTimer()
        timer.start()
        c0, t0 = compile_seconds(), time.perf_counter()
        print(kernel_mod.total(np.ones(3)), kernel_mod.total(np.ones(4)))
        free = timer.elapsed()
        print('CLOCK', compile_seconds() - c0, time.perf_counter() - t0, free)
    ''')
    runs = [subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                           timeout=300) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first, second = (r.stdout for r in runs)
    assert first.count('NOTICE') == 1 and 'first run only' in first
    assert 'NOTICE' not in second and '3.0 4.0' in second
    # compile_seconds counts the compile (most of the first call's time), not a cache load
    clocks = [[float(v) for v in out.split('CLOCK')[1].split()] for out in (first, second)]
    assert 0.5 * clocks[0][1] < clocks[0][0] <= clocks[0][1]
    assert clocks[1][0] == 0.0
    # CompileFreeTimer: the interval's wall time without its compile time
    for compiled, wall, free in clocks:
        assert 0.0 <= free < wall - compiled + 0.05


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / 'f.txt'
    atomic_write_bytes(path, b'old')
    import nerfreg.utils.fileio as fileio

    def boom(*args):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(fileio.os, 'replace', boom)
    with pytest.raises(OSError):
        atomic_write_bytes(path, b'new')
    assert path.read_bytes() == b'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['f.txt']  # no temp file left


def test_ensure_writable_dir_names_the_folder_and_the_fix(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(PermissionError, match=r'cache dir .*file/sub is not writable.*NERFREG'):
        ensure_writable_dir(tmp_path / 'file' / 'sub', 'cache dir', 'Set NERFREG_CACHE.')
    assert ensure_writable_dir(tmp_path / 'a' / 'b').is_dir()


def test_library_log_messages_reach_the_run_log_file(tmp_path):
    import logging

    from nerfreg.engine import DefaultTrainer
    from nerfreg.utils.config import load_config
    sys.path.insert(0, str(Path(__file__).parent / 'toy_plugin'))
    cfg = load_config(Path(__file__).parent / 'configs' / 'toy.py')
    cfg.work_dir = str(tmp_path / 'work')
    trainer = DefaultTrainer.from_cfg(cfg)
    logging.getLogger('nerfreg.strategies.default').info('step 7: 3 cloned (a strategy says)')
    for handler in trainer.logger.handlers:
        handler.flush()
    (log,) = Path(trainer.work_dir).glob('*.log')
    assert 'step 7: 3 cloned (a strategy says)' in log.read_text()
