"""Persons across frames: each frame's detections are assigned to tracks by scipy's Hungarian solver on a cost of
box overlap and keypoint distance, against where each track is predicted to be (constant velocity), so two
persons who cross keep their indices. A track unseen for `max_age` frames ends; a new person gets a new index.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclasses.dataclass
class _Track:
    index: int
    xy: np.ndarray  # (V, 2) last seen keypoints, NaN where missing
    velocity: np.ndarray  # (2,) mean joint displacement per frame
    last_frame: int


@dataclasses.dataclass
class Tracker:
    max_age: int = 30  # frames a track survives unseen
    max_cost: float = 0.8  # a cost above this is no match (cost in [0, 1]: 0.5 * (1 - IoU) + 0.5 * distance)
    _tracks: list[_Track] = dataclasses.field(default_factory=list)
    _next: int = 0

    def update(self, frame: int, xy: np.ndarray) -> list[int]:
        """xy (N, V, 2) one frame's persons, NaN where a joint is missing -> the track index of each person."""
        self._tracks = [t for t in self._tracks if frame - t.last_frame <= self.max_age]
        ids = [-1] * len(xy)
        if self._tracks and len(xy):
            predicted = [t.xy + t.velocity * (frame - t.last_frame) for t in self._tracks]
            cost = np.array([[_cost(p, d) for d in xy] for p in predicted])  # (tracks, persons)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] <= self.max_cost:
                    ids[c] = self._tracks[r].index
                    self._move(self._tracks[r], frame, xy[c])
        for c, found in enumerate(ids):
            if found < 0:
                ids[c] = self._next
                self._tracks.append(_Track(self._next, xy[c].copy(), np.zeros(2), frame))
                self._next += 1
        return ids

    @staticmethod
    def _move(track: _Track, frame: int, xy: np.ndarray) -> None:
        step = np.nanmean(xy - track.xy, axis=0) / max(frame - track.last_frame, 1)  # (2,)
        track.velocity = np.where(np.isfinite(step), step, 0.0)
        track.xy, track.last_frame = xy.copy(), frame


def _box(xy: np.ndarray) -> np.ndarray | None:
    """(V, 2) -> (x0, y0, x1, y1) of the present joints, None when none is present."""
    present = np.isfinite(xy).all(axis=1)
    if not present.any():
        return None
    pts = xy[present]
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


def _cost(track_xy: np.ndarray, person_xy: np.ndarray) -> float:
    a, b = _box(track_xy), _box(person_xy)
    if a is None or b is None:
        return 1.0
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    iou = inter / union if union > 0 else 0.0
    both = np.isfinite(track_xy).all(axis=1) & np.isfinite(person_xy).all(axis=1)
    if not both.any():
        return 1.0
    scale = max(float(np.hypot(*(b[2:] - b[:2]))), 1.0)  # the person's box diagonal
    distance = float(np.linalg.norm(track_xy[both] - person_xy[both], axis=1).mean()) / scale
    return 0.5 * (1.0 - iou) + 0.5 * min(distance, 1.0)
