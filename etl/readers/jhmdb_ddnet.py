"""DD-Net's JHMDB pickles GT_{train,test}_{k}.pkl: `{'pose': [(T, 15, 2) float64], 'label': [str]}`.

The coordinates are JHMDB's normalised `pos_world` (puppet-scale relative, y down), with no clip names and no
scores. Each clip is fitted, keeping its aspect ratio, into a 240x320 canvas (JHMDB's frame size) with a
CANVAS_MARGIN border: one similarity transform per clip, so the motion inside the clip is unchanged.

The three splits k = 1, 2, 3 hold the same 609 clips, so only one split is read (k = split_protocol, default 1)
and clip ids are s{k}_{train|test}_{index:04d} (index = position in that pickle's list).
"""

from __future__ import annotations

import io
import pickletools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject
from etl.readers.common import ClipError, describe_found, expand_files, file_reject, guarded, mark_missing
from etl.readers.format_options import SPLIT_PROTOCOL
from etl.readers.options import ReadContext
from etl.readers.registry import FormatSpec
from etl.readers.safe_pickle import load_pickle

FORMAT = "jhmdb-ddnet"
PATTERNS = ("GT_*.pkl",)
SPLITS = ("1", "2", "3")
N_JOINTS = 15
IMG_H, IMG_W = 240, 320
CANVAS_MARGIN = 0.1  # fraction of the canvas left free on each side
# The 14 classes present in DD-Net's pickles, sorted (the 7 JHMDB classes with '_' in their name are missing).
CLASSES = (
    "catch",
    "clap",
    "golf",
    "jump",
    "pick",
    "pour",
    "pullup",
    "push",
    "run",
    "sit",
    "stand",
    "throw",
    "walk",
    "wave",
)
_NAME = re.compile(r"GT_(train|test)_(\d+)")


def chosen_split(split_protocol: str | None) -> str:
    """The JHMDB split k to read; ActrecError for anything but '1', '2', '3'."""
    k = "1" if split_protocol is None else str(split_protocol).strip()
    if k not in SPLITS:
        raise ActrecError(f"jhmdb-ddnet split {split_protocol!r} does not exist; choose 1, 2 or 3")
    return k


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    k = chosen_split(ctx.option("split_protocol"))
    for given in paths:
        for path in expand_files([given], PATTERNS):
            match = _NAME.fullmatch(path.stem)
            if match is None:
                yield file_reject(
                    path, "file name must be GT_train_<k>.pkl or GT_test_<k>.pkl (DD-Net's JHMDB pickles)"
                )
                continue
            part, file_k = match.groups()
            if file_k == k:
                yield from _read_file(path, part, k, ctx)
            elif not given.is_dir():  # a folder holds all three splits: its other splits are skipped silently
                yield file_reject(
                    path,
                    f"belongs to split {file_k} but split {k} is selected (split_protocol {file_k!r} reads it); the "
                    "three splits hold the same 609 clips, so they are never mixed",
                )


def _read_file(path: Path, part: str, k: str, ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    try:
        data = load_pickle(path)
    except ActrecError as exc:
        yield file_reject(path, str(exc).removeprefix(f"{path}: "))
        return
    if not (
        isinstance(data, Mapping)
        and isinstance(data.get("pose"), list)
        and isinstance(data.get("label"), list)
    ):
        yield file_reject(
            path,
            f"wrong top-level structure: expected {{'pose': [...], 'label': [...]}}, found {describe_found(data)}",
        )
        return
    poses, labels = data["pose"], data["label"]
    if len(poses) != len(labels):
        yield file_reject(path, f"'pose' has {len(poses)} clips but 'label' has {len(labels)}")
        return
    for index, (pose, label) in enumerate(zip(poses, labels, strict=True)):
        clip_id = f"s{k}_{part}_{index:04d}"
        source = f"{path}#{index}"

        def build(pose=pose, label=label, clip_id: str = clip_id, source: str = source) -> PoseClip:
            return _clip(pose, label, clip_id, source, part, k, ctx)

        yield guarded(build, clip_id, source)


def fit_to_canvas(coords: np.ndarray) -> np.ndarray:
    """Scale and shift (T, V, 2) coordinates so the clip's bounding box fits the canvas, centred, aspect kept."""
    finite = np.isfinite(coords).all(axis=-1)
    if not finite.any():
        return coords.copy()
    lo = coords[finite].min(axis=0)  # (2,) x, y
    hi = coords[finite].max(axis=0)
    extent = hi - lo
    room = np.array([IMG_W, IMG_H], np.float64) * (1 - 2 * CANVAS_MARGIN)
    with np.errstate(divide="ignore"):
        scale = float(np.min(np.where(extent > 0, room / extent, np.inf)))
    if not np.isfinite(scale):  # a single point: nothing to scale
        scale = 1.0
    centre = np.array([IMG_W, IMG_H], np.float64) / 2
    return (coords - (lo + hi) / 2) * scale + centre


def _clip(pose, label, clip_id: str, source: str, part: str, k: str, ctx: ReadContext) -> PoseClip:
    pose = np.asarray(pose)
    if pose.ndim == 3:
        ctx.options.check_clip_size(1, pose.shape[0], pose.shape[1])  # (T, V, 2): before the copies
    if pose.ndim != 3 or pose.shape[1:] != (N_JOINTS, 2) or not np.issubdtype(pose.dtype, np.number):
        raise ClipError(
            f"pose must be numeric (T, {N_JOINTS}, 2), found shape {pose.shape} dtype {pose.dtype}"
        )
    if not isinstance(label, str):
        raise ClipError(f"label must be a string, found {type(label).__name__}")
    keypoints = fit_to_canvas(pose.astype(np.float64)).astype(np.float32)[None]  # (1, T, 15, 2)
    scores = np.ones(keypoints.shape[:3], np.float32)  # (1, T, 15): ground truth, no confidences
    mark_missing(keypoints, scores, ~np.isfinite(keypoints).all(axis=-1))
    return PoseClip(
        clip_id=clip_id,
        keypoints=keypoints,
        scores=scores,
        label_name=label,
        split=part,
        img_h=IMG_H,
        img_w=IMG_W,
        source=source,
        source_format=FORMAT,
        label=CLASSES.index(label) if label in CLASSES else None,
        meta={"jhmdb_split": int(k)},
    )


_DDNET_NAME = re.compile(r"GT_(train|test)_\d+")


def sniff(path: Path) -> bool:
    """DD-Net's GT_train_k/GT_test_k pickles, or a pickle whose dict starts with 'pose' or 'label'."""
    if path.suffix.lower() not in (".pkl", ".pickle"):
        return False
    return bool(_DDNET_NAME.fullmatch(path.stem)) or _is_ddnet_pickle(path)


def _is_ddnet_pickle(path: Path) -> bool:
    """True when the pickle is a dict whose first key is 'pose' or 'label' (DD-Net), read from its first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    first_container = None
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(head)):
            if first_container is None and opcode.name in ("EMPTY_DICT", "DICT", "EMPTY_LIST", "LIST"):
                first_container = opcode.name
            if isinstance(arg, str) and ("UNICODE" in opcode.name or "STRING" in opcode.name):
                return first_container == "EMPTY_DICT" and arg in ("pose", "label")
    except Exception:  # the peek ends mid-stream: genops raises at the cut
        return False
    return False


SPEC = FormatSpec(
    name=FORMAT,
    read=read,
    sniff=sniff,
    options=(SPLIT_PROTOCOL,),
    check_options=lambda values: chosen_split(values["split_protocol"]),
    classes=CLASSES,
)
