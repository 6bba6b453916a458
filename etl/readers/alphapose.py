"""AlphaPose results in COCO form (`alphapose-results.json`): frames named by image file (`"image_id": "12.jpg"`)
and, with `--pose_track`, each person's track id in `idx`. Without tracking AlphaPose writes `idx` 0 (or [0]) for
everyone, so `idx` counts as a track id only where it is one: an integer, never twice in one frame.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NUMBERED = re.compile(r"(\d+)\.(?:jpg|jpeg|png|bmp)", re.IGNORECASE)


def frame_numbers_of_names(ids) -> dict | None:
    """{image_id: frame number} when every id is a string like '12.jpg', else None."""
    if not ids or not all(isinstance(i, str) for i in ids):
        return None
    numbers = {}
    for image_id in ids:
        match = _NUMBERED.fullmatch(image_id.rsplit("/", 1)[-1])
        if match is None:
            return None
        numbers[image_id] = int(match.group(1))
    return numbers if len(set(numbers.values())) == len(numbers) else None


def alphapose_tracks(detections: list) -> list:
    """The detections with `track_id` taken from AlphaPose's `idx` where `idx` is a real track id."""
    if not detections or any(
        not isinstance(d, Mapping) or "idx" not in d or "track_id" in d for d in detections
    ):
        return detections
    ids = [_track(d["idx"]) for d in detections]
    if any(i is None for i in ids):
        return detections
    frames_ids = [(d["image_id"], i) for d, i in zip(detections, ids, strict=True)]
    if len(set(frames_ids)) != len(frames_ids):  # untracked output: idx 0 for several people in a frame
        return detections
    return [{**d, "track_id": i} for d, i in zip(detections, ids, strict=True)]


def _track(idx) -> int | None:
    if isinstance(idx, list) and len(idx) == 1:
        idx = idx[0]
    if isinstance(idx, float) and idx.is_integer():
        idx = int(idx)
    return idx if isinstance(idx, int) and not isinstance(idx, bool) else None
