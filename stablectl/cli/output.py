"""Rendering helpers shared by the commands: one console, JSON, progress, GitHub Actions."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.segment import Segment

from stablectl.text import printable

_console: Console | None = None
_err: Console | None = None


class SafeConsole(Console):
    """A rich console that prints text from elsewhere (upstream subjects, comments, titles)
    without its control characters: an ESC in an upstream subject cannot recolour the
    terminal, move its cursor or plant a link. rich's own styling and cursor control are
    separate segments and stay."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            s if s.control else Segment(printable(s.text), s.style) for s in buffer
        )


def console() -> Console:
    global _console
    if _console is None:
        _console = SafeConsole(highlight=False, no_color=bool(os.environ.get("NO_COLOR")) or None)
    return _console


def err_console() -> Console:
    global _err
    if _err is None:
        _err = SafeConsole(
            stderr=True, highlight=False, no_color=bool(os.environ.get("NO_COLOR")) or None
        )
    return _err


def print_json(data: Any) -> None:
    """Indented on a terminal; compact (and fast: C encoder) when piped to a program."""
    indent = 2 if sys.stdout.isatty() else None  # JSON escapes every control character
    sys.stdout.write(json.dumps(data, indent=indent, default=str) + "\n")


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


class Reporter:
    """Progress on a terminal (stderr), silence elsewhere."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and err_console().is_terminal
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    @contextmanager
    def running(self) -> Iterator[Reporter]:
        if not self.enabled:
            yield self
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err_console(),
            transient=True,
        )
        with self._progress:
            yield self
        self._progress = None

    def update(self, label: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        if label not in self._tasks:
            self._tasks[label] = self._progress.add_task(label, total=total or None)
        self._progress.update(self._tasks[label], completed=done, total=total or None)
