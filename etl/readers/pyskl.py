"""MMAction2 / PYSKL annotation pickles: `{'split': {name: [frame_dir, ...]}, 'annotations': [dict, ...]}` or a
bare list of annotation dicts. Loaded only through `etl.readers.safe_pickle` (numpy arrays and containers, nothing else).

PYSKL's 3D pickles (NTU's `ntu60_3danno.pkl`: `keypoint` (M, T, V, 3) camera-space metres, no `keypoint_score`)
are read too: the 3D joints are kept as the clip's 3D keypoints, and its 2D keypoints (what rendering uses) are
their projection onto the Kinect v2 depth frame (424x512) as `--project` says, as for NTU .skeleton files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject, safe_clip_id
from etl.readers.common import (
    THREE_D_CLIP,
    ClipError,
    as_int,
    as_text,
    describe_found,
    expand_files,
    extent_size,
    fallback_clip_id,
    file_reject,
    guarded,
    mark_missing,
    refuse_complex,
)
from etl.readers.format_options import PROJECT, SPLIT_PROTOCOL
from etl.readers.generic import label_name_for
from etl.readers.ntu_skeleton import project_3d
from etl.readers.options import ReadContext
from etl.readers.registry import FormatSpec
from etl.readers.safe_pickle import load_pickle

FORMAT = "pyskl"
PATTERNS = ("*.pkl", "*.pickle")
_SPLIT_NAMES = {"train": "train", "val": "test", "test": "test"}  # normalised suffix of e.g. xsub_val


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for path in expand_files(paths, PATTERNS):
        yield from _read_file(path, ctx)


def _read_file(path: Path, ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    try:
        data = load_pickle(path, max_bytes=ctx.options.max_clip_bytes)
    except ActrecError as exc:  # refused global or corrupt stream: reject this file, keep going
        yield file_reject(path, str(exc).removeprefix(f"{path}: "))
        return
    if isinstance(data, Mapping) and "annotations" in data:
        annotations, splits = data["annotations"], data.get("split")
        splits = {} if splits is None else splits
    elif isinstance(data, list):
        annotations, splits = data, {}
    else:
        yield file_reject(
            path,
            "wrong top-level structure: expected a dict with 'annotations' (and 'split') or a list of annotation "
            f"dicts, found {describe_found(data, max_keys=8)}",
        )
        return
    if not isinstance(annotations, list) or not isinstance(splits, Mapping):
        yield file_reject(
            path,
            f"wrong structure: 'annotations' must be a list (found {describe_found(annotations, max_keys=8)}) and 'split' a dict "
            f"(found {describe_found(splits, max_keys=8)})",
        )
        return
    try:
        membership, protocol = _split_membership(splits, ctx.option("split_protocol"))
    except ClipError as exc:
        yield file_reject(path, str(exc))
        return
    split_names = list(membership)
    for index, annotation in enumerate(annotations):
        raw_id = annotation.get("frame_dir") if isinstance(annotation, Mapping) else None
        default_id = f"{fallback_clip_id(path.stem)}_{index:06d}"
        clip_id = default_id if raw_id is None else fallback_clip_id(as_text(raw_id), default_id)
        source = f"{path}#{raw_id if raw_id is not None else index}"

        def build(annotation=annotation, index: int = index, source: str = source) -> PoseClip:
            return _clip(annotation, index, source, membership, split_names, protocol, ctx)

        yield guarded(build, clip_id, source)


def _split_membership(splits: Mapping, protocol: str | None) -> tuple[dict[str, set[str]], str | None]:
    """{split name: set of frame_dirs} and the protocol whose keys name the `split` column.

    Default protocol: the prefix before the last '_' of the first split key ('xsub_train' -> 'xsub';
    a key without '_' such as 'train' has the empty prefix).
    """
    membership = {}
    for name, members in splits.items():
        if not isinstance(members, list | tuple | set | np.ndarray):
            raise ClipError(
                f"split {name!r} must be a list of frame_dir names, found {type(members).__name__}"
            )
        membership[str(name)] = {str(m) for m in members}
    if not membership:
        return membership, None
    prefixes = {name.rpartition("_")[0] for name in membership}
    chosen = protocol if protocol is not None else next(iter(membership)).rpartition("_")[0]
    if chosen not in prefixes:
        known = ", ".join(sorted(p or "(no prefix)" for p in prefixes))
        raise ClipError(
            f"split protocol {chosen!r} names none of the split keys ({', '.join(membership)}); use one of: {known}"
        )
    return membership, chosen


def _clip_split(frame_dir: str, membership: dict[str, set[str]], protocol: str | None) -> str | None:
    for name, members in membership.items():
        prefix, _, suffix = name.rpartition("_")
        if prefix == protocol and frame_dir in members:
            return _SPLIT_NAMES.get(suffix, suffix)
    return None


def _clip(
    annotation,
    index: int,
    source: str,
    membership: dict[str, set[str]],
    split_names: list[str],
    protocol: str | None,
    ctx: ReadContext,
) -> PoseClip:
    if not isinstance(annotation, Mapping):
        raise ClipError(f"annotation {index} must be a dict, found {type(annotation).__name__}")
    missing = [k for k in ("frame_dir", "label", "keypoint") if k not in annotation]
    if missing:
        raise ClipError(f"annotation {index} lacks key(s) {', '.join(missing)}")
    frame_dir = as_text(annotation["frame_dir"])
    keypoints = np.asarray(annotation["keypoint"])
    if (
        keypoints.ndim != 4
        or keypoints.shape[-1] not in (2, 3)
        or not np.issubdtype(keypoints.dtype, np.number)
    ):
        raise ClipError(
            f"'keypoint' must be numeric (M, T, V, 2) 2D or (M, T, V, 3) 3D coordinates, found shape "
            f"{keypoints.shape} dtype {keypoints.dtype}"
        )
    refuse_complex(keypoints, "keypoint")
    ctx.options.check_clip_size(*keypoints.shape[:3])  # (M, T, V): before the float32 copies
    if keypoints.shape[-1] == 3:
        ctx.options.check_array_size((*keypoints.shape[:3], 6), np.float32, THREE_D_CLIP)
        keypoints, scores, keypoints3d, img_hw = _from_3d(keypoints, ctx)
    else:
        (keypoints, scores), keypoints3d, img_hw = _from_2d(annotation, keypoints), None, None
    label = as_int(annotation["label"], "label")
    img_h, img_w = img_hw or _image_size(annotation, keypoints)  # 3D: the projection's frame
    meta = {f"split_{name}": frame_dir in membership[name] for name in split_names}
    return PoseClip(
        clip_id=safe_clip_id(frame_dir),
        keypoints=keypoints,
        scores=scores,
        label_name=label_name_for(label, ctx.classes),
        split=_clip_split(frame_dir, membership, protocol),
        img_h=img_h,
        img_w=img_w,
        source=source,
        source_format=FORMAT,
        label=label,
        meta=meta,
        keypoints3d=keypoints3d,
    )


def _from_2d(annotation, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 2D annotation's joints (M, T, V, 2) -> (keypoints float32, scores (M, T, V)), missing joints marked."""
    keypoints = joints.astype(np.float32)  # a copy
    if "keypoint_score" in annotation:
        scores = np.asarray(annotation["keypoint_score"])
        refuse_complex(scores, "keypoint_score")
        if scores.shape != keypoints.shape[:3] or not np.issubdtype(scores.dtype, np.number):
            raise ClipError(
                f"'keypoint_score' must be (M, T, V) = {keypoints.shape[:3]} to match 'keypoint' "
                f"{keypoints.shape}, found {scores.shape}"
            )
        scores = scores.astype(np.float32)  # (M, T, V)
        # PYSKL pads absent persons/joints with (0, 0) and score 0; a zero confidence carries no position
        missing_joint = ~(scores > 0)
    else:
        scores = np.ones(keypoints.shape[:3], np.float32)
        missing_joint = ~np.isfinite(keypoints).all(axis=-1) | (keypoints == 0).all(axis=-1)
    mark_missing(keypoints, scores, missing_joint)
    return keypoints, scores


def _image_size(annotation, keypoints: np.ndarray) -> tuple[int, int]:
    """(img_h, img_w) from img_shape/original_shape, else the extent of the keypoints."""
    shape = annotation.get("img_shape", annotation.get("original_shape"))
    if shape is None:
        return extent_size(keypoints)
    shape = tuple(np.asarray(shape).reshape(-1).tolist())
    if len(shape) < 2:
        raise ClipError(f"'img_shape' must be (height, width), found {shape}")
    return as_int(shape[0], "img_shape height"), as_int(shape[1], "img_shape width")


def _from_3d(joints: np.ndarray, ctx: ReadContext):
    """A 3D annotation's joints (M, T, V, 3), camera space, PYSKL padding absent persons/joints with zeros ->
    (keypoints (M, T, V, 2) pixels on the depth frame, scores (M, T, V), keypoints3d, (img_h, img_w))."""
    keypoints3d = joints.astype(np.float32)  # (M, T, V, 3), a copy
    keypoints, img_hw = project_3d(keypoints3d.astype(np.float64), ctx.option("project"))
    keypoints = keypoints.astype(np.float32)
    scores = np.ones(keypoints.shape[:3], np.float32)  # 3D pickles carry no confidences
    missing = (
        ~np.isfinite(keypoints3d).all(axis=-1)
        | (keypoints3d == 0).all(axis=-1)
        | ~np.isfinite(keypoints).all(axis=-1)
    )
    mark_missing(keypoints, scores, missing)
    keypoints3d[missing] = np.nan
    return keypoints, scores, keypoints3d, img_hw


def sniff(path: Path) -> bool:
    return path.suffix.lower() in (
        ".pkl",
        ".pickle",
    )  # any pickle: DD-Net's are told first (etl.readers.formats)


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff, options=(SPLIT_PROTOCOL, PROJECT))
