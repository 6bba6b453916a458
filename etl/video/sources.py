"""The videos `actrec-etl extract` is given: files as named, folders searched. Needs no video extra, so the
command can tell a folder without videos (the DVC pipeline's default, data/videos) before it requires one."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from etl.common.errors import ActrecError
from etl.readers.common import natural_key
from etl.video.options import VIDEO_SUFFIXES


def find_videos(paths: Iterable[Path]) -> list[Path]:
    """Files as given (whatever their suffix); folders searched recursively for video suffixes, natural order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
            found.extend(sorted(inside, key=natural_key))
        elif path.is_file():
            found.append(path)
        else:
            raise ActrecError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def no_video_message(paths: Iterable[Path]) -> str:
    return f"no video file ({', '.join(VIDEO_SUFFIXES)}) in {', '.join(map(str, paths))}"
