"""The four input streams of a graph network, PYSKL's definitions (`JointToBone`, `ToMotion`, `GenSkeFeat`).

All functions take and return float32 (M, T, V, C) arrays: M persons, T frames, V joints, C channels.
`has_score` says the last of C=3 channels is a detection score (2D keypoints + score, PYSKL's coco/openpose input)
rather than a coordinate (3D keypoints): a score is averaged, never differenced.
- `j`:  joints as given;
- `b`:  bones, joint v minus its parent along the layout's tree (train/models/graph.py `bone_parents`); the root's is 0;
- `jm`: joint motion, frame t+1 minus frame t, the last frame 0;
- `bm`: bone motion, the same over bones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from etl.common.errors import ActrecError
from train.config import STREAMS


def _check(x: np.ndarray, has_score: bool) -> None:
    if x.ndim != 4:
        raise ActrecError(f"a keypoint stream needs (M, T, V, C) coordinates, got shape {x.shape}")
    if has_score and x.shape[-1] != 3:
        raise ActrecError(f"coordinates with a score channel need C == 3 (x, y, score), got C={x.shape[-1]}")


def bones(x: np.ndarray, parents: Sequence[int], has_score: bool) -> np.ndarray:
    """(M, T, V, C) -> (M, T, V, C): x[..., v, :] - x[..., parents[v], :]; a score channel gets the pair's mean."""
    _check(x, has_score)
    x = np.asarray(x, dtype=np.float32)
    if len(parents) != x.shape[2]:
        raise ActrecError(f"the bone tree has {len(parents)} joints, the coordinates {x.shape[2]}")
    parent = np.asarray(parents)
    out = x - x[:, :, parent]
    if has_score:
        out[..., 2] = (x[..., 2] + x[:, :, parent, 2]) / 2
    return out


def motion(x: np.ndarray, has_score: bool) -> np.ndarray:
    """(M, T, V, C) -> (M, T, V, C): x[:, t + 1] - x[:, t], the last frame 0; a score channel gets the mean."""
    _check(x, has_score)
    x = np.asarray(x, dtype=np.float32)
    out = np.zeros_like(x)
    out[:, :-1] = x[:, 1:] - x[:, :-1]
    if has_score:
        out[:, :-1, :, 2] = (x[:, 1:, :, 2] + x[:, :-1, :, 2]) / 2
    return out


def stream(x: np.ndarray, name: str, parents: Sequence[int], has_score: bool) -> np.ndarray:
    """Stream `name` (one of STREAMS) of joints x (M, T, V, C)."""
    if name not in STREAMS:
        raise ActrecError(f"unknown stream {name!r}; choose one of {', '.join(STREAMS)}")
    if name == "j":
        _check(x, has_score)
        return np.asarray(x, dtype=np.float32)
    if name == "jm":
        return motion(x, has_score)
    b = bones(x, parents, has_score)
    return b if name == "b" else motion(b, has_score)
