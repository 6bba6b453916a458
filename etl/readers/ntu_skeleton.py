"""NTU RGB+D 60/120 raw skeletons: one `SsssCcccPpppRrrrAaaa.skeleton` text file per sample (Kinect v2, 25 joints).

    <frame count>
    per frame:  <body count>
      per body: bodyID clippedEdges handLeftConfidence handLeftState handRightConfidence handRightState
                isRestricted leanX leanY trackingState                      (10 values, bodyID first)
                <joint count = 25>
                25 x: x y z depthX depthY colorX colorY orientW orientX orientY orientZ trackingState

2D coordinates (`coords`): `color` (colorX, colorY on the 1080x1920 RGB frame, the default), `depth` (depthX,
depthY on the 424x512 depth frame) or `3d` (camera-space x, y, z in metres projected onto the 424x512 depth
frame, pinhole or ortho as `project` says). Whatever the 2D coordinates, the camera-space x, y, z (metres) are
kept as the clip's 3D keypoints. Persons are bodies by bodyID; joint trackingState 2 (tracked)
scores 1.0, 1 (inferred) `occluded_score`, 0 (not tracked) is missing. The `*missing_skeletons*.txt` lists that
ship with NTU name samples without a usable skeleton: each becomes a reject.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject
from etl.readers.common import (
    THREE_D_CLIP,
    ClipError,
    describe_error,
    expand_files,
    fallback_clip_id,
    file_reject,
    guarded,
    mark_missing,
    natural_key,
)
from etl.readers.format_options import COORDS as COORDS_OPTION
from etl.readers.format_options import OCCLUDED_SCORE, PROJECT, SPLIT_PROTOCOL
from etl.readers.ntu_classes import CLASSES, official_splits
from etl.readers.options import ReadContext
from etl.readers.registry import FormatSpec

FORMAT = "ntu-skeleton"
PATTERNS = ("*.skeleton",)
MISSING_LIST_PATTERN = "*missing_skeleton*.txt"
COORDS = ("color", "depth", "3d")
SPLIT_PROTOCOLS = ("xsub", "xview", "xset")
N_JOINTS = 25
COLOR_H, COLOR_W = 1080, 1920
DEPTH_H, DEPTH_W = 424, 512
# Kinect v2 depth (IR) camera: the nominal intrinsics that libfreenect2 ships as defaults
FX = FY = 365.456
CX, CY = 254.878, 205.395
Z_REF = 3.0  # metres: NTU subjects stand about 2.5-4 m from the cameras (ortho scale = FX / Z_REF)
_BODY_INFO = 10
_JOINT_VALUES = 12
_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


def check_options(coords: str, split_protocol: str | None) -> None:
    if coords not in COORDS:
        raise ActrecError(f"unknown NTU coordinates {coords!r}; choose one of {', '.join(COORDS)}")
    if split_protocol is not None and split_protocol not in SPLIT_PROTOCOLS:
        raise ActrecError(
            f"ntu-skeleton split protocol {split_protocol!r} does not exist; choose one of {', '.join(SPLIT_PROTOCOLS)}"
        )


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    lists = [p for p in paths if p.is_file() and p.suffix.lower() == ".txt"]
    for folder in (p for p in paths if p.is_dir()):
        lists += sorted(folder.rglob(MISSING_LIST_PATTERN), key=natural_key)
    listed: dict[str, Path] = {}  # sample name -> the list that names it
    for path in lists:
        try:
            names = path.read_text(encoding="utf-8-sig").split()
        except (OSError, UnicodeDecodeError) as exc:
            raise ActrecError(
                f"cannot read the NTU missing-skeleton list {path}: {describe_error(exc)}"
            ) from None
        for name in names:
            listed.setdefault(name.removesuffix(".skeleton"), path)
    files = list(expand_files([p for p in paths if p not in lists], PATTERNS))
    for path in files:
        if path.stem not in listed:
            yield _read_file(path, ctx)
    for name, path in listed.items():
        yield Reject(
            fallback_clip_id(name),
            str(path),
            f"{name}: listed in {path.name}: NTU has no usable skeleton for it",
        )


def _read_file(path: Path, ctx: ReadContext) -> PoseClip | Reject:
    match = _NAME.fullmatch(path.stem)
    if match is None:
        return file_reject(path, "file name does not follow NTU's SsssCcccPpppRrrrAaaa.skeleton")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        return file_reject(path, f"cannot read as NTU skeleton text: {describe_error(exc)}")
    return guarded(lambda: _clip(path, text, match, ctx), fallback_clip_id(path.stem), str(path))


def parse_bodies(text: str) -> tuple[int, dict[str, dict[int, np.ndarray]]]:
    """(frame count, {bodyID: {frame: (25, 12) joint values}}) in the order bodies first appear."""
    tokens = text.split()
    pos = 0

    def take(n: int, what: str) -> list[str]:
        nonlocal pos
        if pos + n > len(tokens):
            raise ClipError(f"the file ends inside {what} (truncated?)")
        out = tokens[pos : pos + n]
        pos += n
        return out

    def count(what: str) -> int:
        (value,) = take(1, what)
        if not value.isdigit():
            raise ClipError(f"{what} must be a count, found {value!r}")
        return int(value)

    n_frames = count("the frame count")
    bodies: dict[str, dict[int, np.ndarray]] = {}
    for t in range(n_frames):
        for b in range(count(f"the body count of frame {t}")):
            body_id = take(_BODY_INFO, f"the info line of body {b} in frame {t}")[0]
            n_joints = count(f"the joint count of body {b} in frame {t}")
            if n_joints != N_JOINTS:
                raise ClipError(f"frame {t} body {b}: {n_joints} joints, NTU skeletons have {N_JOINTS}")
            values = take(n_joints * _JOINT_VALUES, f"the joints of body {b} in frame {t}")
            try:
                joints = np.array(values, dtype=np.float64).reshape(n_joints, _JOINT_VALUES)
            except ValueError:
                raise ClipError(f"frame {t} body {b}: a joint value is not a number") from None
            if t in bodies.setdefault(body_id, {}):
                raise ClipError(f"frame {t}: bodyID {body_id} appears twice")
            bodies[body_id][t] = joints
    if pos != len(tokens):
        raise ClipError(f"{len(tokens) - pos} values after the last of the {n_frames} frames")
    return n_frames, bodies


def _clip(path: Path, text: str, match: re.Match, ctx: ReadContext) -> PoseClip:
    setup, camera, subject, replication, action = (int(g) for g in match.groups())
    if not 1 <= action <= len(CLASSES):
        raise ClipError(f"action A{action:03d} is not one of NTU's {len(CLASSES)} actions")
    n_frames, bodies = parse_bodies(text)
    if n_frames == 0 or not bodies:
        raise ClipError(f"no body in any of its {n_frames} frames")
    # person 0 = the body tracked in the most frames (ties: the first to appear)
    order = sorted(bodies, key=lambda body: -len(bodies[body]))
    ctx.options.check_clip_size(len(order), n_frames, N_JOINTS)  # before the (M, T, V) arrays
    ctx.options.check_array_size((len(order), n_frames, N_JOINTS, 6), np.float32, THREE_D_CLIP)
    values = np.full((len(order), n_frames, N_JOINTS, _JOINT_VALUES), np.nan)  # (M, T, 25, 12)
    for m, body in enumerate(order):
        for t, joints in bodies[body].items():
            values[m, t] = joints
    keypoints, (img_h, img_w) = _coordinates(
        values, ctx.option("coords"), ctx.option("project")
    )  # (M, T, 25, 2)
    state = values[..., 11]  # (M, T, 25): 2 tracked, 1 inferred, 0 not tracked; NaN where the body is absent
    scores = np.where(state == 2, 1.0, np.where(state == 1, ctx.option("occluded_score"), 0.0)).astype(
        np.float32
    )
    keypoints = keypoints.astype(np.float32)
    missing = ~(scores > 0) | ~np.isfinite(keypoints).all(axis=-1) | (keypoints == 0).all(axis=-1)
    mark_missing(keypoints, scores, missing)
    keypoints3d = values[..., 0:3].astype(np.float32)  # (M, T, 25, 3) camera space, metres
    keypoints3d[missing] = np.nan
    splits = official_splits(setup, camera, subject)
    protocol = ctx.option("split_protocol") or "xsub"
    return PoseClip(
        clip_id=path.stem,
        keypoints=keypoints,
        scores=scores,
        label_name=CLASSES[action - 1],
        split=splits[protocol],
        img_h=img_h,
        img_w=img_w,
        source=str(path),
        source_format=FORMAT,
        label=action - 1,
        meta={
            "setup": setup,
            "camera": camera,
            "subject": subject,
            "replication": replication,
            **{f"split_{name}": value for name, value in splits.items()},
        },
        keypoints3d=keypoints3d,
    )


def _coordinates(values: np.ndarray, coords: str, project: str) -> tuple[np.ndarray, tuple[int, int]]:
    """(M, T, 25, 12) joint values -> ((M, T, 25, 2) pixels, (img_h, img_w)) for the chosen coordinates."""
    if coords == "color":
        return values[..., 5:7].copy(), (COLOR_H, COLOR_W)
    if coords == "depth":
        return values[..., 3:5].copy(), (DEPTH_H, DEPTH_W)
    return project_3d(values, project)


def project_3d(values: np.ndarray, project: str) -> tuple[np.ndarray, tuple[int, int]]:
    """(..., >=3) camera-space x, y, z in metres -> ((..., 2) pixels on the depth frame, (img_h, img_w));
    pinhole with the Kinect v2 depth intrinsics (NaN where z <= 0), or ortho (depth dropped)."""
    x, y, z = values[..., 0], values[..., 1], values[..., 2]  # metres, y up, z away from the camera
    with np.errstate(divide="ignore", invalid="ignore"):
        if project == "pinhole":
            u, v = CX + FX * x / z, CY - FY * y / z
        else:  # ortho: depth dropped, the pinhole scale at the typical distance
            u, v = CX + FX / Z_REF * x, CY - FY / Z_REF * y
    pixels = np.stack([u, v], axis=-1)
    if project == "pinhole":
        pixels[~(z > 0)] = np.nan
    return pixels, (DEPTH_H, DEPTH_W)


def sniff(path: Path) -> bool:
    """A .skeleton file, or the list of samples with missing skeletons that NTU ships beside them."""
    suffix = path.suffix.lower()
    return suffix == ".skeleton" or (suffix == ".txt" and "missing_skeleton" in path.name.lower())


SPEC = FormatSpec(
    name=FORMAT,
    read=read,
    sniff=sniff,
    options=(COORDS_OPTION, PROJECT, OCCLUDED_SCORE, SPLIT_PROTOCOL),
    check_options=lambda values: check_options(values["coords"], values["split_protocol"]),
)
