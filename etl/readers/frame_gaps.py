"""Per-frame files numbered by frame (OpenPose `..._000000000012_keypoints.json`, YOLO `frame_12.txt`): a number
that has no file is a frame the tool wrote nothing for, and stays in the clip as an empty frame, so the clip's
length and timing stay right.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from etl.readers.common import ClipError

_TRAILING_NUMBER = re.compile(r"(\d+)(?=\D*$)")


def frame_number(path: Path) -> int | None:
    match = _TRAILING_NUMBER.search(path.stem)
    return int(match.group(1)) if match else None


def frame_slots(frames: list[Path]) -> tuple[list[int], int]:
    """(time index of every file, number of frames) for files already in frame order.

    Files numbered n0, n0 + s, n0 + 2s, ... (s = the common step, e.g. 1, or 5 for every 5th frame) keep their
    numbers' spacing and the missing numbers become empty frames. Files without numbers, with a number twice, or
    with gaps larger than the files themselves (timestamps rather than frame numbers) are taken one after another.
    """
    numbers = [frame_number(f) for f in frames]
    sequential = list(range(len(frames))), len(frames)
    if len(frames) < 2 or any(n is None for n in numbers) or len(set(numbers)) != len(numbers):
        return sequential
    start = min(numbers)
    step = math.gcd(*(n - start for n in numbers if n != start))
    slots = [(n - start) // step for n in numbers]
    n_frames = max(slots) + 1
    if n_frames > 2 * len(frames) + 8:  # mostly gaps: not frame numbers
        return sequential
    return slots, n_frames


def check_frame_span(n_frames: int, n_entries: int, what: str) -> None:
    """Refuse frame numbers that span far more frames than the file has entries for (a corrupt or hostile
    number would otherwise allocate that many empty frames)."""
    if n_frames > 10 * n_entries + 1000:
        raise ClipError(f"{what} span {n_frames} frames for only {n_entries} entries: not frame numbers?")
