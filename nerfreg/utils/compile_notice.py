"""Say what is happening before a first-run kernel compilation.

Numba compiles a cached kernel (``cache=True``) the first time it runs on a machine and
loads it from its cache afterwards; the compile of nerfreg's CPU rasterizer takes about a
minute on 2 cores with no output. A numba event listener prints one line when the first
cache miss starts compiling, and nothing on later (cached) runs. ``compile_seconds`` counts
the time spent compiling and ``CompileFreeTimer`` leaves it out of a measured interval, so
benchmarks can leave it out of training time.
"""

from __future__ import annotations

import time
from typing import Any, Callable

COMPILE_SECONDS = 60  # the CPU rasterizer + projection kernels on 2 cores (2026-11)
_installed: list[Any] = []


def announce_kernel_compiles(log: Callable[[str], None] | None = None) -> bool:
    """Install (once per process) a listener that logs ``compiling CPU kernels, first run
    only, about N s`` at the first compile of a disk-cached numba kernel. Returns whether
    numba is available."""
    try:
        from numba.core import event
    except ImportError:
        return False
    if _installed:
        return True
    if log is None:
        from mmengine.logging import print_log

        def log(message: str) -> None:
            print_log(message, logger='current')

    class _FirstCompile(event.Listener):
        announced = False

        def on_start(self, ev: Any) -> None:
            dispatcher = (ev.data or {}).get('dispatcher')
            cached = type(getattr(dispatcher, '_cache', None)).__name__ != 'NullCache'
            if not self.announced and dispatcher is not None and cached:
                self.announced = True
                log(f'compiling CPU kernels, first run only, about {COMPILE_SECONDS} s '
                    '(cached for later runs)')

        def on_end(self, ev: Any) -> None:
            pass

    listener = _FirstCompile()
    event.register('numba:compile', listener)
    _installed.append(listener)
    return True


_clock: list[Any] = []


def compile_seconds() -> float:
    """Seconds this process has spent compiling numba kernels since the first call (0.0
    without numba); nested compiles count once. Call it before the timed region starts."""
    try:
        from numba.core import event
    except ImportError:
        return 0.0
    if not _clock:
        class _CompileClock(event.Listener):
            total = 0.0
            depth = 0
            start = 0.0

            def on_start(self, ev: Any) -> None:
                if self.depth == 0:
                    self.start = time.perf_counter()
                self.depth += 1

            def on_end(self, ev: Any) -> None:
                self.depth -= 1
                if self.depth == 0:
                    self.total += time.perf_counter() - self.start

        clock = _CompileClock()
        event.register('numba:compile', clock)
        _clock.append(clock)
    return _clock[0].total


class CompileFreeTimer:
    """Wall time since ``start()`` minus the numba compile time in that interval."""

    def __init__(self) -> None:
        self._t0 = 0.0
        self._c0 = 0.0

    def start(self) -> None:
        self._c0 = compile_seconds()
        self._t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0 - (compile_seconds() - self._c0)
