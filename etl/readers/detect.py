"""`--format auto`: the format every input looks like, by asking each format's sniff in the registry's order.

A folder is looked into breadth first, in sorted order: files no format claims (READMEs, licences, images) and
hidden files are ignored, and counted, as long as the pose files found agree on one format.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from etl.common.errors import ActrecError
from etl.readers.common import existing_inputs, natural_key
from etl.readers.formats import SNIFF_ORDER

_POSE_FILES_SNIFFED = 64  # per folder: enough to see a mix of formats, cheap on a tree of 100,000 files
_EXPECTED = "expected .pkl, .json, .h5/.hdf5, .npz, .npy, .mat, .skeleton, .txt or .csv pose files (or folders of them)"


@dataclass(frozen=True)
class Detection:
    fmt: str
    ignored: tuple[Path, ...] = ()  # files inside the given folders that are no pose file of any format


def sniff_file(path: Path) -> str | None:
    """The name of the first format whose sniff claims the file, or None."""
    for spec in SNIFF_ORDER:
        try:
            if spec.sniff(path):
                return spec.name
        except Exception:  # a sniff only looks: a file it cannot look into is not of its format
            continue
    return None


def detect_source(paths: list[Path]) -> Detection:
    """The one format of every given path; ActrecError when none can be told or pose files of different
    formats are mixed (naming two of them)."""
    found: dict[str, Path] = {}  # format -> first path of it
    ignored: list[Path] = []
    for path in existing_inputs(paths):
        if path.is_dir():
            formats, skipped = _sniff_folder(path)
            ignored.extend(skipped)
            if not formats:
                raise ActrecError(
                    f"cannot tell the format of {path}: no file in it is a pose file of a known format "
                    f"({len(skipped)} other file(s) ignored); {_EXPECTED}; pass --format explicitly"
                )
        else:
            fmt = sniff_file(path)
            if fmt is None:
                raise ActrecError(f"cannot tell the format of {path}: {_EXPECTED}; pass --format explicitly")
            formats = {fmt: path}
        for fmt, first in formats.items():
            found.setdefault(fmt, first)
    if len(found) > 1:
        (fmt_a, path_a), (fmt_b, path_b) = list(found.items())[:2]
        raise ActrecError(
            f"the input paths look like different formats ({fmt_a}: {path_a}; {fmt_b}: {path_b}); "
            "ingest one format at a time"
        )
    return Detection(next(iter(found)), tuple(ignored))


def detect_format(paths: list[Path]) -> str:
    """The format name every given path looks like (see `detect_source`)."""
    return detect_source(paths).fmt


def _sniff_folder(folder: Path) -> tuple[dict[str, Path], list[Path]]:
    """({format: first file of it}, the files ignored) for the first pose files of a folder tree."""
    formats: dict[str, Path] = {}
    ignored: list[Path] = []
    n_pose = 0
    queue = deque([folder])
    while queue and n_pose < _POSE_FILES_SNIFFED:
        try:
            entries = sorted(queue.popleft().iterdir(), key=natural_key)
        except OSError:
            continue
        for entry in entries:
            if n_pose >= _POSE_FILES_SNIFFED:
                break
            if entry.name.startswith("."):  # hidden files and folders (.DS_Store, .git): never pose data
                if not entry.is_dir():
                    ignored.append(entry)
                continue
            if entry.is_dir():
                queue.append(entry)
                continue
            fmt = sniff_file(entry)
            if fmt is None:
                ignored.append(entry)
            else:
                n_pose += 1
                formats.setdefault(fmt, entry)
    return formats, ignored
