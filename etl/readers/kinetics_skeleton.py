"""ST-GCN's Kinetics-skeleton JSON, one file per video (OpenPose COCO-18 run on 340x256 frames):

    {"data": [{"frame_index": 1, "skeleton": [{"pose": [x0, y0, ..., x17, y17], "score": [s0, ..., s17]}]}],
     "label": "abseiling", "label_index": 0}

`frame_index` counts from 1; a frame number without an entry is an empty frame. x, y are normalised to [0, 1]:
pixels = x * img_w, y * img_h on an `image_size` frame (default 256x340, the release). A joint with score 0 (or
at (0, 0)) is missing. Persons: by mean joint score within each frame (person 0 = most confident), as ST-GCN.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from etl.pose.clip import PoseClip, Reject
from etl.readers.common import (
    ClipError,
    expand_files,
    fallback_clip_id,
    file_reject,
    guarded,
    load_json,
    mark_missing,
)
from etl.readers.format_options import IMAGE_SIZE
from etl.readers.frame_gaps import check_frame_span
from etl.readers.options import ReadContext
from etl.readers.peek import json_head
from etl.readers.registry import FormatSpec

FORMAT = "kinetics-skeleton"
PATTERNS = ("*.json",)
DEFAULT_SIZE = (256, 340)  # (img_h, img_w) of the Kinetics-skeleton release


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for path in expand_files(paths, PATTERNS):
        if path.name.startswith("kinetics_") and path.name.endswith("_label.json"):
            continue  # the release's label index files, not clips
        try:
            data = load_json(path)
        except ClipError as exc:
            yield file_reject(path, str(exc))
            continue
        yield guarded(
            lambda path=path, data=data: _clip(path, data, ctx), fallback_clip_id(path.stem), str(path)
        )


def _clip(path: Path, data, ctx: ReadContext) -> PoseClip:
    if not isinstance(data, Mapping) or not isinstance(data.get("data"), list):
        raise ClipError(
            "wrong structure: expected {'data': [{'frame_index', 'skeleton'}], 'label', 'label_index'}"
        )
    frames: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for i, frame in enumerate(data["data"]):
        if not isinstance(frame, Mapping) or not isinstance(frame.get("frame_index"), int):
            raise ClipError(f"data[{i}] needs an integer 'frame_index'")
        if frame["frame_index"] < 1:
            raise ClipError(
                f"data[{i}]: frame_index {frame['frame_index']} (Kinetics-skeleton counts from 1)"
            )
        people = frames.setdefault(frame["frame_index"] - 1, [])
        for p, person in enumerate(frame.get("skeleton") or []):
            pose = (
                np.asarray(person.get("pose", []), dtype=np.float64) if isinstance(person, Mapping) else None
            )
            score = (
                np.asarray(person.get("score", []), dtype=np.float64) if isinstance(person, Mapping) else None
            )
            if pose is None or pose.ndim != 1 or len(pose) != 2 * len(score) or score.ndim != 1:
                raise ClipError(f"data[{i}] skeleton {p}: 'pose' must hold 2 values per 'score'")
            people.append((pose.reshape(-1, 2), score))
    n_joints = {len(score) for people in frames.values() for _, score in people}
    if len(n_joints) > 1:
        raise ClipError(f"skeletons have different joint counts: {sorted(n_joints)}")
    if not n_joints:
        raise ClipError("no skeleton in any frame")
    (n_joints,) = n_joints
    n_frames = max(frames) + 1
    check_frame_span(n_frames, len(frames), "frame_index values")
    n_persons = max(len(people) for people in frames.values())
    img_h, img_w = ctx.option("image_size") or DEFAULT_SIZE
    ctx.options.check_clip_size(n_persons, n_frames, n_joints)  # before the (M, T, V) arrays
    keypoints = np.full((n_persons, n_frames, n_joints, 2), np.nan, np.float32)  # (M, T, V, 2)
    scores = np.zeros((n_persons, n_frames, n_joints), np.float32)  # (M, T, V)
    for t, people in frames.items():
        ranked = sorted(people, key=lambda person: -float(person[1].mean()))  # stable: ties keep file order
        for m, (pose, score) in enumerate(ranked):
            keypoints[m, t] = pose * (img_w, img_h)
            scores[m, t] = score
    zero = (keypoints == 0).all(axis=-1)
    mark_missing(keypoints, scores, zero | ~(scores > 0))
    label = data.get("label_index")
    label = label if isinstance(label, int) and not isinstance(label, bool) and label >= 0 else None
    label_name = data.get("label") if isinstance(data.get("label"), str) else None
    return PoseClip(
        clip_id=fallback_clip_id(path.stem),
        keypoints=keypoints,
        scores=scores,
        label_name=label_name,
        split=None,
        img_h=int(img_h),
        img_w=int(img_w),
        source=str(path),
        source_format=FORMAT,
        label=label,
    )


def sniff(path: Path) -> bool:
    head = json_head(path)
    return head.startswith("{") and '"data"' in head and ('"skeleton"' in head or '"label_index"' in head)


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff, options=(IMAGE_SIZE,))
