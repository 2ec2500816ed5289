"""Rich progress display: one line per stage, with a bar when the stage can count."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class StageTask:
    """Handle a running stage uses to report progress (thread-safe through rich)."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress, self._task = progress, task

    def update(self, done: int, total: int | None = None) -> None:
        self._progress.update(self._task, completed=done, total=total)

    def advance(self, step: int = 1) -> None:
        self._progress.advance(self._task, step)


class StageDisplay:
    """Prints ``✓ stage  12.3 s`` lines; shows a spinner/bar while a stage runs."""

    def __init__(self, quiet: bool = False) -> None:
        self.console = Console(stderr=True, quiet=quiet)

    @contextmanager
    def stage(self, name: str, description: str, total: int | None = None
              ) -> Iterator[StageTask]:
        columns = [SpinnerColumn(), TextColumn('[bold]{task.description}'), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn()]
        t0 = time.perf_counter()
        with Progress(*columns, console=self.console, transient=True,
                      disable=not self.console.is_terminal) as progress:
            task = progress.add_task(f'{name}: {description}', total=total)
            yield StageTask(progress, task)
        self.console.print(f'[green]✓[/] {name:<10} {time.perf_counter() - t0:7.1f} s  '
                           f'{description}')

    def reused(self, name: str, seconds: float) -> None:
        self.console.print(f'[cyan]↺[/] {name:<10} reused (took {seconds:.1f} s before)')

    def note(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)
