"""Shared bits of the benchmark scripts."""

from __future__ import annotations

import sys
from pathlib import Path


def command_line(script: str, argv: list[str] | None) -> str:
    """The command that reproduces a table, without the output paths (--write-doc, --json-out)."""
    args = list(sys.argv[1:] if argv is None else argv)
    for flag in ("--write-doc", "--json-out"):
        if flag in args:
            i = args.index(flag)
            del args[i : i + 2]
    return " ".join([".venv/bin/python", f"bench/{script}", *args])


def ratio(x: float) -> str:
    """A speed-up for a table: '107x', '4.2x', '0.31x' (a slow-down stays visible instead of rounding to 0x)."""
    return f"{x:.0f}x" if x >= 10 else f"{x:.2g}x"


def emit(md: str, write_doc: str | None) -> None:
    """Print a benchmark's markdown and, with --write-doc, save it for bench/run_all.sh to assemble."""
    print(md)
    if write_doc:
        Path(write_doc).write_text(md)
