"""Check one PoseClip against the chosen layout and clean it: the gate between the readers and the clip store.

`validate_clip` never mutates its input: it returns a new PoseClip with fresh float32 arrays in which the
PoseClip convention holds exactly (a joint is missing <=> coordinates NaN and score 0; every other score in
(0, 1]), or a Reject with one reason a user can act on.
"""

from __future__ import annotations

import dataclasses
from numbers import Integral

import numpy as np

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject
from etl.pose.limits import MAX_IMAGE_SIDE
from etl.pose.skeleton import Layout

NAN_POLICIES = ("missing", "reject")
DEFAULT_NAN_POLICY = NAN_POLICIES[0]  # ingest, its command-line option and validate_clip share it


def validate_clip(
    clip: PoseClip, layout: Layout, *, nan_policy: str = DEFAULT_NAN_POLICY, require_label: bool = True
) -> PoseClip | Reject:
    """A cleaned copy of `clip`, or a Reject saying why it cannot be kept.

    nan_policy: what to do with non-finite coordinates (inf anywhere, or NaN on a joint that has a score):
      "missing" turns them into missing joints and keeps the clip; "reject" rejects the clip.
    """
    if nan_policy not in NAN_POLICIES:
        raise ActrecError(f"unknown nan policy {nan_policy!r}; choose one of {', '.join(NAN_POLICIES)}")

    def reject(reason: str) -> Reject:
        return Reject(clip.clip_id, clip.source, reason)

    structure = _structure_problem(clip, layout)
    if structure is not None:
        return reject(structure)
    if require_label and clip.label_name is None and clip.label is None:
        return reject("missing label (no label_name and no numeric label; give one with a labels manifest)")
    size = _image_size_problem(clip.img_h, clip.img_w)
    if size is not None:
        return reject(size)

    keypoints = np.array(clip.keypoints, dtype=np.float32, copy=True)  # (M, T, V, 2)
    scores = np.array(clip.scores, dtype=np.float32, copy=True)  # (M, T, V)
    scores[np.isnan(scores)] = 0.0
    np.clip(scores, 0.0, 1.0, out=scores)  # also maps +inf to 1 and -inf to 0

    # NaN coordinates with score 0 are the missing-joint convention; anything else non-finite is bad data
    finite = np.isfinite(keypoints).all(axis=-1)  # (M, T, V)
    declared_missing = np.isnan(keypoints).all(axis=-1) & (scores == 0)
    bad = ~finite & ~declared_missing
    if bad.any() and nan_policy == "reject":
        return reject(_describe_bad(bad))
    missing = ~finite | (scores == 0)
    keypoints[missing] = np.nan
    scores[missing] = 0.0
    if not (scores > 0).any():
        return reject("no valid joint in any frame (every score is 0 or every coordinate is non-finite)")
    keypoints3d = None
    if clip.keypoints3d is not None:
        keypoints3d = np.array(clip.keypoints3d, dtype=np.float32, copy=True)  # (M, T, V, 3)
        if nan_policy == "reject" and np.isinf(keypoints3d).any():
            return reject(_describe_bad(np.isinf(keypoints3d).any(axis=-1), "3D "))
        # a joint missing in 2D is missing in 3D too; a non-finite 3D joint is missing in 3D only
        keypoints3d[missing | ~np.isfinite(keypoints3d).all(axis=-1)] = np.nan
    return dataclasses.replace(
        clip,
        keypoints=keypoints,
        scores=scores,
        keypoints3d=keypoints3d,
        img_h=int(clip.img_h),
        img_w=int(clip.img_w),
        meta=dict(clip.meta),
    )


def _structure_problem(clip: PoseClip, layout: Layout) -> str | None:
    keypoints, scores = np.asarray(clip.keypoints), np.asarray(clip.scores)
    if keypoints.ndim != 4 or keypoints.shape[-1] != 2:
        return f"keypoints must be (M, T, V, 2), found shape {keypoints.shape}"
    if scores.ndim != 3:
        return f"scores must be (M, T, V), found shape {scores.shape}"
    if not np.issubdtype(keypoints.dtype, np.number) or not np.issubdtype(scores.dtype, np.number):
        return f"keypoints and scores must be numeric, found dtypes {keypoints.dtype} and {scores.dtype}"
    if np.iscomplexobj(keypoints) or np.iscomplexobj(scores):
        return (
            f"keypoints and scores must be real, found dtypes {keypoints.dtype} and {scores.dtype} (complex)"
        )
    n_persons, n_frames, n_joints, _ = keypoints.shape
    if n_frames == 0 or n_persons == 0:
        return f"empty clip: {n_frames} frames, {n_persons} persons (keypoints shape {keypoints.shape})"
    if scores.shape != keypoints.shape[:3]:
        return (
            f"keypoints {keypoints.shape} and scores {scores.shape} disagree: scores must be (M, T, V) = "
            f"{keypoints.shape[:3]}"
        )
    if n_joints != layout.n_joints:
        return f"{n_joints} joints per person, but layout {layout.name!r} has {layout.n_joints}"
    return (
        None if clip.keypoints3d is None else _structure_problem_3d(np.asarray(clip.keypoints3d), keypoints)
    )


def _structure_problem_3d(keypoints3d: np.ndarray, keypoints: np.ndarray) -> str | None:
    if keypoints3d.shape != (*keypoints.shape[:3], 3):
        return f"3D keypoints must be (M, T, V, 3) = {(*keypoints.shape[:3], 3)}, found shape {keypoints3d.shape}"
    if not np.issubdtype(keypoints3d.dtype, np.number) or np.iscomplexobj(keypoints3d):
        return f"3D keypoints must be real numbers, found dtype {keypoints3d.dtype}"
    return None


def _image_size_problem(img_h, img_w) -> str | None:
    ok = all(isinstance(v, Integral) and not isinstance(v, bool) and v > 0 for v in (img_h, img_w))
    if not ok:
        return f"image size must be positive integers, found img_h={img_h!r}, img_w={img_w!r}"
    if max(img_h, img_w) > MAX_IMAGE_SIDE:  # e.g. img_shape 1e30: no int64 column or pixel grid holds it
        return f"image size img_h={img_h}, img_w={img_w} is above the limit of {MAX_IMAGE_SIDE} pixels a side"
    return None


def _describe_bad(bad: np.ndarray, kind: str = "") -> str:
    """'3 non-finite coordinates at frames 4-7' (one coordinate = one joint's (x, y), or (x, y, z) with kind
    '3D '; frames are 0-based). bad: (M, T, V) bool."""
    frames = np.nonzero(bad.any(axis=(0, 2)))[0]  # frame indices with a bad joint
    where = f"frame {frames[0]}" if len(frames) == 1 else f"frames {frames[0]}-{frames[-1]}"
    return f"{int(bad.sum())} non-finite {kind}coordinates at {where}"
