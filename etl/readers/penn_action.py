"""Penn Action annotations: one MATLAB file per clip (labels/NNNN.mat) with x, y, visibility (T, 13).

Gotchas from the dataset (see shared/data/penn_action/SOURCE.md): x/y are float64, uint16 or uint8 depending
on the file (cast before any arithmetic), bbox may have one row less than x (not used here), invisible joints
keep their coordinates except a few at (0, 0), which are treated as missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from etl.pose.clip import PoseClip, Reject
from etl.readers.common import (
    ClipError,
    as_int,
    as_text,
    expand_files,
    fallback_clip_id,
    file_reject,
    guarded,
    mark_missing,
)
from etl.readers.format_options import OCCLUDED_SCORE
from etl.readers.mat_checks import load_mat, mat_names
from etl.readers.options import ReadContext
from etl.readers.registry import FormatSpec

FORMAT = "penn-action"
PATTERNS = ("*.mat",)
N_JOINTS = 13
# The 15 actions in file order (files are contiguous per class), which is also alphabetical order.
CLASSES = (
    "baseball_pitch",
    "baseball_swing",
    "bench_press",
    "bowl",
    "clean_and_jerk",
    "golf_swing",
    "jump_rope",
    "jumping_jacks",
    "pullup",
    "pushup",
    "situp",
    "squat",
    "strum_guitar",
    "tennis_forehand",
    "tennis_serve",
)
_REQUIRED = ("action", "pose", "x", "y", "visibility", "train", "dimensions")
_SPLITS = {1: "train", -1: "test"}


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for path in expand_files(paths, PATTERNS):
        yield _read_file(path, ctx)


def _read_file(path: Path, ctx: ReadContext) -> PoseClip | Reject:
    try:
        mat = load_mat(path, ctx.options.check_array_size)
    except ClipError as exc:
        return file_reject(path, str(exc))
    return guarded(lambda: _clip(path, mat, ctx), fallback_clip_id(path.stem), str(path))


def _clip(path: Path, mat: dict, ctx: ReadContext) -> PoseClip:
    missing = [key for key in _REQUIRED if key not in mat]
    if missing:
        found = ", ".join(k for k in mat if not k.startswith("__"))
        raise ClipError(
            f"not a Penn Action label file: missing field(s) {', '.join(missing)} (found {found})"
        )
    n_frames = np.shape(mat["x"])[0] if np.ndim(mat["x"]) == 2 else 0
    ctx.options.check_clip_size(1, n_frames, N_JOINTS)  # before the float32 copies
    occluded_score = ctx.option("occluded_score")
    x = np.asarray(mat["x"], dtype=np.float32)  # (T, 13); uint8/uint16 in some files
    y = np.asarray(mat["y"], dtype=np.float32)  # (T, 13)
    visibility = np.asarray(mat["visibility"])  # (T, 13), 1 visible / 0 occluded
    if x.ndim != 2 or x.shape[1] != N_JOINTS or y.shape != x.shape or visibility.shape != x.shape:
        raise ClipError(
            f"x, y and visibility must all be (T, {N_JOINTS}), found x {x.shape}, y {y.shape}, visibility {visibility.shape}"
        )
    keypoints = np.stack([x, y], axis=-1)[None]  # (1, T, 13, 2)
    visible = (visibility != 0)[None]  # (1, T, 13)
    scores = np.where(visible, 1.0, occluded_score).astype(np.float32)  # (1, T, 13)
    placeholder = (keypoints == 0).all(axis=-1) & ~visible  # unannotated joints are stored as (0, 0)
    mark_missing(keypoints, scores, placeholder | ~(scores > 0))

    dimensions = np.asarray(mat["dimensions"]).reshape(-1)  # [H, W, T]
    if dimensions.size < 2:
        raise ClipError(f"'dimensions' must be [H, W, T], found {dimensions.tolist()}")
    train = as_int(mat["train"], "train")
    if train not in _SPLITS:
        raise ClipError(f"'train' must be 1 (train) or -1 (test), found {train}")
    action = as_text(mat["action"]).strip()
    return PoseClip(
        clip_id=fallback_clip_id(path.stem),
        keypoints=keypoints,
        scores=scores,
        label_name=action,
        split=_SPLITS[train],
        img_h=as_int(dimensions[0], "dimensions height"),
        img_w=as_int(dimensions[1], "dimensions width"),
        source=str(path),
        source_format=FORMAT,
        label=CLASSES.index(action) if action in CLASSES else None,
        meta={"viewpoint": as_text(mat["pose"]).strip()},
    )


def sniff(path: Path) -> bool:
    return path.suffix.lower() == ".mat" and {"x", "y", "visibility"} <= mat_names(path)


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff, options=(OCCLUDED_SCORE,), classes=CLASSES)
