"""The generic array layout shared by the h5 and npz readers: `keypoints` (T, M, V, 2|3), `scores`, scalar attrs.

Files store time first (T, M, V, ...), as most exporters do; PoseClip is person first (M, T, V, ...).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from etl.pose.clip import PoseClip
from etl.readers.common import (
    ClipError,
    as_int,
    as_scalar,
    as_text,
    extent_size,
    mark_missing,
    refuse_complex,
)

LABEL_ATTRS = ("label_name", "label", "split", "img_h", "img_w")


def label_name_for(label: int | None, classes: list[str] | None) -> str | None:
    """The name of a numeric label: from the classes file when given, else 'class_<n>'. ClipError if out of range."""
    if label is None:
        return None
    if classes is None:
        return f"class_{label}"
    if not 0 <= label < len(classes):
        raise ClipError(
            f"label {label} has no name in the classes file ({len(classes)} names, labels 0-{len(classes) - 1})"
        )
    return classes[label]


def check_declared_size(shape: tuple[int, ...], options) -> None:
    """LimitError when a `keypoints` array of `shape` (T, M, V, C) or (T, V, C) declares more persons, frames or
    bytes than `options` (ReadOptions) allow; called with the shape a file declares, before the array is read.
    Other shapes are left to `clip_from_arrays`, which names what it expected."""
    if len(shape) == 4:
        n_frames, n_persons, n_joints = shape[:3]
    elif len(shape) == 3:
        (n_frames, n_joints), n_persons = shape[:2], 1
    else:
        return
    options.check_clip_size(int(n_persons), int(n_frames), int(n_joints))


def clip_from_arrays(
    *,
    clip_id: str,
    source: str,
    source_format: str,
    keypoints: np.ndarray,
    scores: np.ndarray | None,
    attrs: Mapping,
    classes: list[str] | None = None,
) -> PoseClip:
    """Build a PoseClip from file arrays. Raises ClipError with the expected vs found shape on bad input.

    keypoints: (T, M, V, 2) or (T, M, V, 3) with the score third; (T, V, 2|3) is read as one person.
    scores:    (T, M, V) or (T, V); overrides a third keypoint channel.
    A joint is missing where its coordinates are NaN or its score is 0.
    """
    kp = np.asarray(keypoints)
    if kp.ndim == 3:  # (T, V, C): a single person
        kp = kp[:, None]
    if kp.ndim != 4 or kp.shape[-1] not in (2, 3):
        raise ClipError(
            f"'keypoints' must be (T, M, V, 2) or (T, M, V, 3), found shape {tuple(np.shape(keypoints))}"
        )
    if not np.issubdtype(kp.dtype, np.number):
        raise ClipError(f"'keypoints' must be numeric, found dtype {kp.dtype}")
    refuse_complex(kp, "keypoints")
    kp = kp.astype(np.float32).transpose(1, 0, 2, 3)  # (M, T, V, C)
    coords = np.ascontiguousarray(kp[..., :2])  # (M, T, V, 2)
    if scores is not None:
        sc = np.asarray(scores)
        refuse_complex(sc, "scores")
        if sc.ndim == 2:
            sc = sc[:, None]
        expected = (kp.shape[1], kp.shape[0], kp.shape[2])  # (T, M, V) as stored
        if sc.shape != expected or not np.issubdtype(sc.dtype, np.number):
            raise ClipError(
                f"'scores' must be numeric (T, M, V) = {expected} to match 'keypoints' {tuple(np.shape(keypoints))}, "
                f"found shape {tuple(np.shape(scores))} dtype {sc.dtype}"
            )
        sc = sc.astype(np.float32).transpose(1, 0, 2)  # (M, T, V)
    elif kp.shape[-1] == 3:
        sc = np.ascontiguousarray(kp[..., 2])
    else:
        sc = np.ones(coords.shape[:3], np.float32)
    sc = np.ascontiguousarray(sc)
    mark_missing(coords, sc, np.isnan(coords).any(axis=-1) | ~(sc > 0))

    label = as_int(attrs["label"], "label") if "label" in attrs else None
    label_name = as_text(attrs["label_name"]) if "label_name" in attrs else label_name_for(label, classes)
    split = as_text(attrs["split"]) if "split" in attrs else None
    if "img_h" in attrs and "img_w" in attrs:
        img_h, img_w = as_int(attrs["img_h"], "img_h"), as_int(attrs["img_w"], "img_w")
    else:
        img_h, img_w = extent_size(coords)
    meta = {}
    for key, value in attrs.items():
        if key in LABEL_ATTRS:
            continue
        scalar = as_scalar(value)
        if scalar is not None:
            meta[str(key)] = scalar
    return PoseClip(
        clip_id=clip_id,
        keypoints=coords,
        scores=sc,
        label_name=label_name,
        split=split,
        img_h=img_h,
        img_w=img_w,
        source=source,
        source_format=source_format,
        label=label,
        meta=meta,
    )
