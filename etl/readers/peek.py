"""Cheap looks at a file's first bytes, for the formats' `sniff` functions (`--format auto`)."""

from __future__ import annotations

from pathlib import Path

PEEK_BYTES = 64 * 1024


def peek_text(path: Path, n_bytes: int = PEEK_BYTES) -> str:
    """The first `n_bytes` of a file as text ('' when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(n_bytes).decode("utf-8-sig", errors="replace")
    except OSError:
        return ""


def json_head(path: Path) -> str:
    """The start of a .json file without leading white space ('' for another suffix or an unreadable file)."""
    return peek_text(path).lstrip() if path.suffix.lower() == ".json" else ""


def first_line(path: Path) -> str:
    """The first line of a text file, stripped and lower-case (a CSV header)."""
    lines = peek_text(path, 4096).splitlines()
    return lines[0].strip().lower() if lines else ""
