"""Rich progress bars for the command lines (library code reports progress through callbacks only)."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Bar:
    def __init__(self, progress: Progress, task):
        self._progress, self._task = progress, task

    def update_to(self, done: int, total: int | None = None, **fields) -> None:
        self._progress.update(self._task, completed=done, total=total, **fields)

    def describe(self, text: str) -> None:
        # the description column is rich markup: a file name like "[/x].json" must show as itself
        self._progress.update(self._task, description=escape(text))


def progress_columns(unit: str, extra: str = "") -> list:
    """The columns of every actrec progress bar; `extra` is a rich format string over task fields
    (e.g. "loss {task.fields[loss]:.3f}")."""
    columns = [
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    if extra:
        columns.append(TextColumn(extra))
    return columns


@contextmanager
def progress_bar(description: str, *, unit: str = "items", total: int | None = None):
    """A progress bar on stderr for one task; `Bar.update_to(done, total)` moves it."""
    with Progress(
        *progress_columns(unit), console=Console(stderr=True, soft_wrap=True), transient=False
    ) as progress:
        task = progress.add_task(description, total=total)
        yield Bar(progress, task)
