"""Rich progress bars for the command lines (library code reports progress through callbacks only)."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class Bar:
    """Shown from its first update: a command that fails while checking its arguments leaves no empty bar."""

    def __init__(self, progress: Progress, task):
        self._progress, self._task = progress, task
        self.started = False

    def update_to(self, done: int, total: int | None = None, **fields) -> None:
        if not self.started:
            self._progress.start()
            self.started = True
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
        _Count(),
        TextColumn(unit),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    if extra:
        columns.append(TextColumn(extra))
    return columns


class _Count(ProgressColumn):
    """'3/8' when the total is known, else '3' (ingest streams clips of unknown number: never '3/?')."""

    def render(self, task) -> Text:
        done = int(task.completed)
        return Text(
            f"{done}/{int(task.total)}" if task.total is not None else str(done), style="progress.download"
        )


@contextmanager
def progress_bar(description: str, *, unit: str = "items", total: int | None = None):
    """A progress bar on stderr for one task; `Bar.update_to(done, total)` moves it (and shows it)."""
    progress = Progress(
        *progress_columns(unit),
        console=Console(stderr=True, soft_wrap=True),
        transient=False,
        auto_refresh=True,
    )
    task = progress.add_task(description, total=total)
    bar = Bar(progress, task)
    try:
        yield bar
    finally:
        if bar.started:
            progress.stop()
