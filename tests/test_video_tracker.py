"""The tracker (etl/video/tracker.py): stable person indices across frames, crossing persons included."""

from __future__ import annotations

import numpy as np

from etl.video.tracker import Tracker


def _person(cx: float, cy: float, v: int = 17, size: float = 40.0) -> np.ndarray:
    """(V, 2) a person-sized cloud of joints around (cx, cy)."""
    angles = np.linspace(0, 2 * np.pi, v, endpoint=False)
    return np.stack([cx + 0.3 * size * np.cos(angles), cy + size * np.sin(angles)], axis=1).astype(np.float32)


def test_two_persons_crossing_keep_their_indices():
    # A walks right, B walks left on nearly the same line, 10 px a frame: between frames 9 and 10 they swap
    # places (A 190 -> 200, B 200 -> 190), so matching on last positions alone would swap their indices
    tracker, rng = Tracker(), np.random.default_rng(0)
    ids_a, ids_b = [], []
    for t in range(21):
        a, b = _person(100 + 10 * t, 200), _person(290 - 10 * t, 202)
        order = rng.permutation(2)  # the backend lists persons in any order
        persons = np.stack([a, b])[order]
        ids = tracker.update(t, persons)
        where = {int(o): ids[i] for i, o in enumerate(order)}
        ids_a.append(where[0])
        ids_b.append(where[1])
    assert set(ids_a) == {ids_a[0]}
    assert set(ids_b) == {ids_b[0]}
    assert ids_a[0] != ids_b[0]


def test_a_person_gone_longer_than_max_age_comes_back_as_a_new_index():
    tracker = Tracker(max_age=3)
    first = tracker.update(0, _person(100, 100)[None])
    assert tracker.update(2, _person(102, 100)[None]) == first  # a short gap: the same person
    assert tracker.update(9, _person(104, 100)[None]) != first  # unseen for 7 frames: a new track


def test_missing_joints_and_empty_frames():
    tracker = Tracker()
    xy = _person(100, 100)
    assert tracker.update(0, xy[None]) == [0]
    assert tracker.update(1, np.zeros((0, 17, 2), np.float32)) == []
    partial = xy.copy()
    partial[:8] = np.nan  # half the joints missing: still the same person
    assert tracker.update(2, partial[None]) == [0]
    far = _person(600, 400)
    assert tracker.update(3, np.stack([far, xy])) == [1, 0]
