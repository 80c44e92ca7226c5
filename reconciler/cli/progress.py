"""Apply progress: a progress bar on a terminal, one plain line per event otherwise."""

from __future__ import annotations

import sys
from types import TracebackType

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from reconciler.executor.runner import ActionEvent


class ProgressReporter:
    """Receives ActionEvents from the executor (already serialized by it)."""

    def __init__(self, total: int, tty: bool | None = None) -> None:
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.total = total
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressReporter:
        if self.tty:
            self._progress = Progress(
                TextColumn("[bold]Applying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=Console(stderr=False),
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=self.total)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event: ActionEvent) -> None:
        action = event.action
        label = f"{action.type.value} {action.key} on {action.cloud}"
        if self._progress is not None and self._task is not None:
            if event.phase in ("done", "failed", "skipped"):
                self._progress.advance(self._task)
            self._progress.update(self._task, description=escape(label))
            if event.phase in ("failed", "skipped", "retry", "progress"):
                self._progress.console.print(
                    f"{event.phase}: {label}: {event.message}", markup=False, highlight=False
                )
            return
        if event.phase == "done":
            ident = f" ({event.external_id})" if event.external_id else ""
            click.echo(f"{label}: done{ident} in {event.seconds:.2f}s")
        elif event.phase in ("failed", "skipped", "retry", "progress"):
            click.echo(f"{label}: {event.phase}: {event.message}")
