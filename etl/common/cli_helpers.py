"""What both command lines share, and nothing else (so `actrec-train --help` loads no reader): the consoles,
plain-text output of user text, and the handler that turns the domain error into a one-line message and an exit
code."""

from __future__ import annotations

import dataclasses
import functools
import warnings

import typer
from rich.console import Console
from rich.table import Column
from rich.text import Text

from etl.common.errors import ActrecError, ActrecWarning

console = Console(soft_wrap=True)  # log lines stay whole in files and CI logs
err_console = Console(stderr=True, soft_wrap=True)
_show_warning = warnings.showwarning  # Python's, for warnings that are not actrec's


def say(message: str) -> None:
    """Print a line that may hold user text (paths, labels, expressions) verbatim: never parsed as markup."""
    console.print(message, markup=False, highlight=False)


def cells(*values) -> list[Text]:
    """Table cells shown as plain text: a label '[/x]' is a label, not a closing tag; a missing value (a clip
    with no split: None, NaN or pandas' NA) shows as '-', not 'nan'."""
    return [Text("-" if _missing(v) else str(v)) for v in values]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or type(value).__name__ == "NAType"


def headers(*values) -> list[Column]:
    """Table column headers shown as plain text (split names, column names from a file)."""
    return [Column(header=Text(str(v))) for v in values]


def cli_errors(fn):
    """Turn the domain error into a one-line message and exit code 1 (no traceback for user errors)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", ActrecWarning)
                warnings.showwarning = _warning_line
                return fn(*args, **kwargs)
        except ActrecError as exc:
            # the message holds paths, labels and expressions from the user: plain text, never markup
            err_console.print(Text.assemble(("error:", "bold red"), " ", str(exc)), highlight=False)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """The library's warnings as one plain line on stderr (never a file name and source line)."""
    if issubclass(category, ActrecWarning):
        err_console.print(Text.assemble(("warning:", "bold yellow"), " ", str(message)), highlight=False)
    else:
        _show_warning(message, category, filename, lineno, file, line)


def default_of(config: type, name: str):
    """The default of field `name` of dataclass `config`: command-line options take their defaults from the
    config object the library uses, so the two cannot drift (tests/test_etl_settings.py and tests/test_train_settings.py check every option)."""
    field = {f.name: f for f in dataclasses.fields(config)}[name]
    if field.default is dataclasses.MISSING:
        raise TypeError(f"{config.__name__}.{name} has no plain default")
    return field.default
