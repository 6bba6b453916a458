"""MMPose 1.x predictions, one file per video or image:

* inferencer `--pred-out-dir`: a list of frames `[{"frame_id": 0, "instances": [{"keypoints": [[x, y], ...],
  "keypoint_scores": [...], "bbox": [[x1, y1, x2, y2]], "bbox_score": 0.98}]}]`, or, for an image, the bare
  list of instances;
* demo `--save-predictions`: `{"meta_info": {"keypoint_id2name": {...}, ...}, "instance_info": [frames as above]}`.

Frames are numbered by `frame_id` (a number without an entry is an empty frame). Persons: by `track_id` when every
instance has one, else by `bbox_score` rank within the frame. `meta_info.keypoint_id2name` names the joints: they
are read in the order of the layout by name, or refused with both orders.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from etl.pose.clip import PoseClip, Reject
from etl.readers.common import (
    ClipError,
    expand_files,
    extent_size,
    fallback_clip_id,
    file_reject,
    guarded,
    load_json,
    mark_missing,
)
from etl.readers.frame_gaps import check_frame_span
from etl.readers.joint_order import order_for_layout
from etl.readers.options import ReadContext
from etl.readers.peek import json_head
from etl.readers.registry import FormatSpec

FORMAT = "mmpose-json"
PATTERNS = ("*.json",)


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for path in expand_files(paths, PATTERNS):
        try:
            data = load_json(path)
        except ClipError as exc:
            yield file_reject(path, str(exc))
            continue
        yield guarded(
            lambda path=path, data=data: _clip(path, data, ctx), fallback_clip_id(path.stem), str(path)
        )


def _frames(data) -> tuple[list[Mapping], list[str] | None]:
    """(frames [{frame_id, instances}], joint names or None) of either file form."""
    names = None
    if isinstance(data, Mapping) and "instance_info" in data:
        meta = data.get("meta_info")
        id2name = meta.get("keypoint_id2name") if isinstance(meta, Mapping) else None
        if isinstance(id2name, Mapping) and id2name:
            try:
                names = [str(id2name[k]) for k in sorted(id2name, key=int)]
            except (TypeError, ValueError):
                raise ClipError("meta_info.keypoint_id2name must map joint numbers to names") from None
        data = data["instance_info"]
    if not isinstance(data, list):
        raise ClipError(
            "wrong structure: expected a list of frames {frame_id, instances} or {meta_info, instance_info}"
        )
    if data and all(isinstance(f, Mapping) and "keypoints" in f for f in data):
        return [{"frame_id": 0, "instances": data}], names  # one image: the bare list of instances
    for i, frame in enumerate(data):
        if not isinstance(frame, Mapping) or not isinstance(frame.get("instances"), list):
            raise ClipError(f"frame {i} must be a dict with 'instances' (a list)")
        if not isinstance(frame.get("frame_id", i), int):
            raise ClipError(f"frame {i}: 'frame_id' must be an integer")
    return data, names


def _clip(path: Path, data, ctx: ReadContext) -> PoseClip:
    frames, names = _frames(data)
    frame_ids = [frame.get("frame_id", i) for i, frame in enumerate(frames)]
    if len(set(frame_ids)) != len(frame_ids):
        raise ClipError("a frame_id appears twice")
    start = min(frame_ids, default=0)
    n_frames = max(frame_ids, default=-1) - start + 1
    check_frame_span(n_frames, len(frame_ids), "frame_id values")
    instances = []  # (t, instance index, (V, 2) keypoints, (V,) scores, track_id, bbox_score)
    for t, frame in zip(frame_ids, frames, strict=True):
        for k, inst in enumerate(frame["instances"]):
            where = f"frame_id {t} instance {k}"
            kp = np.asarray(inst.get("keypoints"), dtype=np.float64) if isinstance(inst, Mapping) else None
            if kp is None or kp.ndim != 2 or kp.shape[1] not in (2, 3):
                raise ClipError(f"{where}: 'keypoints' must be [[x, y], ...]")
            if kp.shape[1] == 3:
                raise ClipError(f"{where}: 3D keypoints [x, y, z]; actrec reads 2D poses")
            sc = np.asarray(inst.get("keypoint_scores", np.ones(len(kp))), dtype=np.float64)
            if sc.shape != (len(kp),):
                raise ClipError(f"{where}: 'keypoint_scores' must hold one score per keypoint")
            bbox_score = inst.get("bbox_score", float(sc.mean()))
            if isinstance(bbox_score, list):
                bbox_score = bbox_score[0] if bbox_score else 0.0
            instances.append((t - start, kp, sc, inst.get("track_id"), float(bbox_score)))
    n_joints = {len(kp) for _, kp, _, _, _ in instances}
    if len(n_joints) > 1:
        raise ClipError(f"instances have different keypoint counts: {sorted(n_joints)}")
    n_joints = n_joints.pop() if n_joints else ctx.options.layout.n_joints
    slots = _slots(instances)
    n_persons = max(slots, default=-1) + 1
    ctx.options.check_clip_size(n_persons, n_frames, n_joints)  # before the (M, T, V) arrays
    keypoints = np.full((n_persons, n_frames, n_joints, 2), np.nan, np.float32)  # (M, T, V, 2)
    scores = np.zeros((n_persons, n_frames, n_joints), np.float32)  # (M, T, V)
    for (t, kp, sc, _, _), m in zip(instances, slots, strict=True):
        keypoints[m, t], scores[m, t] = kp, sc
    mark_missing(keypoints, scores, ~(scores > 0))
    order = (
        None if names is None else order_for_layout(names, ctx.options.layout, "meta_info.keypoint_id2name")
    )
    if order is not None:
        keypoints, scores = keypoints[:, :, order], scores[:, :, order]
    img_h, img_w = extent_size(keypoints)
    return PoseClip(
        clip_id=fallback_clip_id(path.stem.removeprefix("results_")),
        keypoints=keypoints,
        scores=scores,
        label_name=None,
        split=None,
        img_h=img_h,
        img_w=img_w,
        source=str(path),
        source_format=FORMAT,
    )


def _slots(instances: list) -> list[int]:
    """Person slot per instance: by track_id when all have one, else by bbox_score rank within the frame."""
    tracks = [inst[3] for inst in instances]
    if tracks and all(isinstance(tr, int) and not isinstance(tr, bool) for tr in tracks):
        slot_of = {tr: m for m, tr in enumerate(sorted(set(tracks)))}
        seen = set()
        for (t, *_), tr in zip(instances, tracks, strict=True):
            if (t, tr) in seen:
                raise ClipError(f"track_id {tr} appears twice in frame {t}")
            seen.add((t, tr))
        return [slot_of[tr] for tr in tracks]
    slots = [0] * len(instances)
    by_frame: dict[int, list[int]] = {}
    for i, inst in enumerate(instances):
        by_frame.setdefault(inst[0], []).append(i)
    for members in by_frame.values():
        for rank, i in enumerate(sorted(members, key=lambda i: -instances[i][4])):
            slots[i] = rank
    return slots


def sniff(path: Path) -> bool:
    """MMPose's dataset dict (`instance_info`) or its per-frame results (`instances`/`keypoint_scores`)."""
    head = json_head(path)
    if head.startswith("{"):
        return '"instance_info"' in head
    return head.startswith("[") and (
        ('"instances"' in head and '"frame_id"' in head) or '"keypoint_scores"' in head
    )


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff)
