"""Rich progress bars for the command line.

``RichProgress`` implements the ``poisonguard.context.Progress`` interface: ``task(description, total=None)``
is a context manager yielding ``advance(n=1)``. Every task gets a line on stderr with a spinner, its
description, a bar (a pulsing one when ``total`` is None) and the elapsed time. Finished tasks stay on screen
with a tick, so the stages of a scan and their durations remain visible; a task that fails is removed (the
error message says what happened). On a console that is not a terminal the finished list is printed once, at
the end. ``quiet=True`` shows nothing.

Use it as a context manager to keep one display alive across a whole scan::

    with RichProgress() as progress:
        result = poisonguard.scan(path, label="y", progress=progress)

Without the ``with`` block each top-level task starts and stops its own display.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as _RichBars

from .context import Progress


class RichProgress(Progress):
    """Progress bars on stderr (or on ``console``); silent with ``quiet=True``."""

    def __init__(self, *, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console
        self._bars: _RichBars | None = None
        self._depth = 0  # open tasks plus an enclosing ``with`` block, if any

    def _make_bars(self) -> _RichBars:
        console = self.console or Console(stderr=True)
        return _RichBars(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def _enter(self) -> None:
        if self._depth == 0:
            self._bars = self._make_bars()
            self._bars.start()
        self._depth += 1

    def _exit(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._bars is not None:
            if self._bars.tasks:
                self._bars.stop()
            else:  # nothing to show (the only task failed): stop without leaving a blank line behind
                self._bars.live.transient = True
                self._bars.live.stop()
            self._bars = None

    def __enter__(self) -> RichProgress:
        if not self.quiet:
            self._enter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.quiet:
            self._exit()

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        if self.quiet:
            yield lambda advance=1: None
            return
        self._enter()
        bars = self._bars
        assert bars is not None
        task_id = bars.add_task(description, total=total)
        done = [0]

        def advance(n: int = 1) -> None:
            done[0] += n
            bars.advance(task_id, n)

        ok = False
        try:
            yield advance
            ok = True
        finally:
            if ok:
                end = max(done[0], int(total or 0), 1)
                bars.update(task_id, total=end, completed=end)
                bars.stop_task(task_id)
            else:  # the error message that follows says what went wrong; a half-drawn bar adds nothing
                bars.remove_task(task_id)
            self._exit()


__all__ = ["RichProgress"]
