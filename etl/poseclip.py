"""The in-memory form of one clip as every reader produces it, before validation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_clip_id(raw: str) -> str:
    """A clip id that is safe as a key, a file name and a pandas query value: [A-Za-z0-9._-] only."""
    cid = _UNSAFE.sub("_", str(raw)).strip("._")
    if not cid:
        raise ValueError(f"clip id {raw!r} has no usable characters")
    return cid


@dataclass
class PoseClip:
    """One clip of 2D poses. Readers fill it; `etl.validate` checks and cleans it.

    keypoints: (M, T, V, 2) float32 pixel coordinates (x, y), NaN where a joint is missing
    scores:    (M, T, V) float32 confidences in [0, 1], 0 where a joint is missing
    """

    clip_id: str
    keypoints: np.ndarray  # (M, T, V, 2) float32
    scores: np.ndarray  # (M, T, V) float32
    label_name: str | None
    split: str | None
    img_h: int
    img_w: int
    source: str  # file path, plus "#key" when one file holds many clips
    source_format: str
    label: int | None = None  # numeric label when the dataset defines one
    meta: dict = field(default_factory=dict)  # extra clip-table columns: viewpoint, subject, camera, fps...

    @property
    def n_persons(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.keypoints.shape[1]) if self.keypoints.ndim == 4 else 0


@dataclass(frozen=True)
class Reject:
    """A clip (or a whole file) that could not be kept, and why."""

    clip_id: str
    source: str
    reason: str
