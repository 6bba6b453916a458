"""UTD-MHAD Kinect v1 skeletons: Skeleton/aA_sS_tT_skeleton.mat with `d_skel` (20, 3, T) in metres, y up,
projected to 2D pixels on a 480x640 canvas; the camera-space joints are kept as the clip's 3D keypoints (metres,
NaN where the Kinect did not track the joint).

pinhole: u = cx + fx * x / z, v = cy - fy * y / z with the Kinect v1 depth-camera intrinsics below.
ortho:   u = cx + s * x,     v = cy - s * y     with s = fx / Z_REF pixels per metre (the pinhole scale at the
         subjects' typical depth), i.e. depth is dropped instead of dividing by it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from etl.pose.clip import PoseClip, Reject
from etl.readers.common import (
    THREE_D_CLIP,
    ClipError,
    expand_files,
    fallback_clip_id,
    file_reject,
    guarded,
    mark_missing,
)
from etl.readers.format_options import PROJECT, PROJECTIONS
from etl.readers.mat_checks import load_mat, mat_names
from etl.readers.options import ReadContext
from etl.readers.registry import FormatSpec

FORMAT = "utd-mhad"
PATTERNS = ("*_skeleton.mat",)
N_JOINTS = 20
IMG_H, IMG_W = 480, 640
# Kinect v1 depth camera (640x480), the commonly used nominal intrinsics (e.g. Burrus' calibration).
FX = FY = 531.15
CX, CY = 320.0, 240.0
Z_REF = 2.9  # metres: the subjects stand 2.7-3 m from the sensor
# The 27 actions in official order: action A is CLASSES[A - 1].
CLASSES = (
    "swipe_left",
    "swipe_right",
    "wave",
    "clap",
    "throw",
    "arm_cross",
    "basketball_shoot",
    "draw_x",
    "draw_circle_CW",
    "draw_circle_CCW",
    "draw_triangle",
    "bowling",
    "boxing",
    "baseball_swing",
    "tennis_swing",
    "arm_curl",
    "tennis_serve",
    "push",
    "knock",
    "catch",
    "pickup_throw",
    "jog",
    "walk",
    "sit2stand",
    "stand2sit",
    "lunge",
    "squat",
)
_NAME = re.compile(r"a(\d+)_s(\d+)_t(\d+)(?:_skeleton)?", re.IGNORECASE)


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for path in expand_files(paths, PATTERNS):
        yield _read_file(path, ctx)


def _read_file(path: Path, ctx: ReadContext) -> PoseClip | Reject:
    match = _NAME.fullmatch(path.stem)
    if match is None:
        return file_reject(
            path, "file name does not follow UTD-MHAD's aA_sS_tT_skeleton.mat (action, subject, trial)"
        )
    try:
        mat = load_mat(path, ctx.options.check_array_size)
    except ClipError as exc:
        return file_reject(path, str(exc))
    action, subject, trial = (int(g) for g in match.groups())
    return guarded(
        lambda: _clip(path, mat, action, subject, trial, ctx),
        fallback_clip_id(path.stem),
        str(path),
    )


def project(joints: np.ndarray, method: str) -> np.ndarray:
    """Camera-space joints (..., 3) in metres -> pixel coordinates (..., 2); NaN where depth z <= 0."""
    x, y, z = joints[..., 0], joints[..., 1], joints[..., 2]
    if method == "pinhole":
        with np.errstate(divide="ignore", invalid="ignore"):
            u = CX + FX * x / z
            v = CY - FY * y / z
    elif method == "ortho":
        scale = FX / Z_REF
        u = CX + scale * x
        v = CY - scale * y
    else:
        raise ClipError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    pixels = np.stack([u, v], axis=-1)
    pixels[~(z > 0)] = np.nan  # Kinect writes zeros for untracked joints
    return pixels


def _clip(path: Path, mat: dict, action: int, subject: int, trial: int, ctx: ReadContext) -> PoseClip:
    if "d_skel" not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "nothing"
        raise ClipError(f"no 'd_skel' variable (found {found})")
    declared = np.shape(mat["d_skel"])  # (20, 3, T)
    n_frames = declared[2] if len(declared) == 3 else 0
    ctx.options.check_clip_size(1, n_frames, N_JOINTS)  # before the copies
    ctx.options.check_array_size((1, n_frames, N_JOINTS, 6), np.float32, THREE_D_CLIP)
    method = ctx.option("project")
    skel = np.asarray(mat["d_skel"], dtype=np.float64)  # (20, 3, T)
    if skel.ndim != 3 or skel.shape[:2] != (N_JOINTS, 3):
        raise ClipError(f"'d_skel' must be ({N_JOINTS}, 3, T), found {skel.shape}")
    if not 1 <= action <= len(CLASSES):
        raise ClipError(f"action a{action} is not one of UTD-MHAD's 27 actions")
    joints = skel.transpose(2, 0, 1)  # (T, 20, 3)
    keypoints = project(joints, method).astype(np.float32)[None]  # (1, T, 20, 2)
    scores = np.ones(keypoints.shape[:3], np.float32)  # (1, T, 20): Kinect gives no confidences
    mark_missing(keypoints, scores, ~np.isfinite(keypoints).all(axis=-1))
    keypoints3d = joints.astype(np.float32)[None]  # (1, T, 20, 3) metres
    keypoints3d[~(scores > 0)] = np.nan  # untracked (z <= 0) or not projectable: missing in 3D too
    return PoseClip(
        clip_id=fallback_clip_id(path.stem.removesuffix("_skeleton")),
        keypoints=keypoints,
        scores=scores,
        label_name=CLASSES[action - 1],
        split="train" if subject % 2 else "test",  # cross-subject: odd subjects train, even test
        img_h=IMG_H,
        img_w=IMG_W,
        source=str(path),
        source_format=FORMAT,
        label=action - 1,
        meta={"subject": subject, "trial": trial},
        keypoints3d=keypoints3d,
    )


def sniff(path: Path) -> bool:
    return path.suffix.lower() == ".mat" and "d_skel" in mat_names(path)


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff, options=(PROJECT,), classes=CLASSES)
