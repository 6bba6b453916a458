"""What both command lines share, and nothing else (so `actrec-train --help` loads no reader): the consoles,
plain-text output of user text, and the handler that turns the domain error into a one-line message and an exit
code."""

from __future__ import annotations

import dataclasses
import functools

import typer
from rich.console import Console
from rich.table import Column
from rich.text import Text

from etl.errors import ActrecError

console = Console(soft_wrap=True)  # log lines stay whole in files and CI logs
err_console = Console(stderr=True, soft_wrap=True)


def say(message: str) -> None:
    """Print a line that may hold user text (paths, labels, expressions) verbatim: never parsed as markup."""
    console.print(message, markup=False, highlight=False)


def cells(*values) -> list[Text]:
    """Table cells shown as plain text: a label '[/x]' is a label, not a closing tag."""
    return [Text(str(v)) for v in values]


def headers(*values) -> list[Column]:
    """Table column headers shown as plain text (split names, column names from a file)."""
    return [Column(header=Text(str(v))) for v in values]


def cli_errors(fn):
    """Turn the domain error into a one-line message and exit code 1 (no traceback for user errors)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ActrecError as exc:
            # the message holds paths, labels and expressions from the user: plain text, never markup
            err_console.print(Text.assemble(("error:", "bold red"), " ", str(exc)), highlight=False)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def default_of(config: type, name: str):
    """The default of field `name` of dataclass `config`: command-line options take their defaults from the
    config object the library uses, so the two cannot drift (tests/test_settings.py checks every option)."""
    field = {f.name: f for f in dataclasses.fields(config)}[name]
    if field.default is dataclasses.MISSING:
        raise TypeError(f"{config.__name__}.{name} has no plain default")
    return field.default
