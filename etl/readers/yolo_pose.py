"""Ultralytics YOLO-pose output, one clip per folder of per-frame files (or one JSON file of frames):

* `--save-txt` labels `<video>_<frame>.txt`: one line per person `cls cx cy w h x1 y1 v1 ... xV yV vV [conf]
  [track_id]`, every value normalised to [0, 1] (pixels need `image_size`); keypoints may also be `x y` pairs.
  A single extra value is read as track ids when it is an integer on every line of the clip, else as confidences.
* `results[i].to_json()`: a list of detections `{"name", "class", "confidence", "box", "track_id"?,
  "keypoints": {"x": [...], "y": [...], "visible": [...]}}` per frame file, or one file holding a list of such
  lists (one per frame). Pixel coordinates (normalised ones need `image_size`).

Ultralytics writes (0, 0) for keypoints below its 0.5 confidence threshold: (0, 0) is a missing joint. Frame files
are ordered by the last number in their name; a number without a file is an empty frame. Persons: by track_id
when every detection has one, else by detection confidence within the frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from etl.pose.clip import PoseClip, Reject
from etl.readers.common import (
    ClipError,
    extent_size,
    fallback_clip_id,
    guarded,
    is_side_file,
    load_json,
    mark_missing,
    natural_key,
)
from etl.readers.format_options import IMAGE_SIZE
from etl.readers.frame_gaps import frame_slots
from etl.readers.openpose_json import frame_key
from etl.readers.options import ReadContext
from etl.readers.peek import json_head, peek_text
from etl.readers.registry import FormatSpec

FORMAT = "yolo-pose"
SUFFIXES = (".txt", ".json")


def clip_units(paths: list[Path]) -> list[tuple[Path, list[Path]]]:
    """(clip path, frame files): a folder of frame files is a clip, a folder of such folders a collection, a
    .json file given alone a clip of its own."""
    units: dict[Path, list[Path]] = {}
    for path in paths:
        if path.is_file():
            units.setdefault(path, [path])
            continue
        frames = _frame_files(path)
        if frames:
            units.setdefault(path, frames)
            continue
        for sub in sorted((p for p in path.iterdir() if p.is_dir()), key=natural_key):
            if _frame_files(sub):
                units.setdefault(sub, _frame_files(sub))
    return [(unit, sorted(files, key=frame_key)) for unit, files in units.items()]


def _frame_files(folder: Path) -> list[Path]:
    return [
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES and not is_side_file(p)
    ]


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for unit, files in clip_units(paths):
        clip_id = fallback_clip_id(unit.stem if unit.is_file() else unit.name)
        yield guarded(lambda unit=unit, files=files: _clip(unit, files, ctx), clip_id, str(unit))


def _clip(unit: Path, files: list[Path], ctx: ReadContext) -> PoseClip:
    n_joints = ctx.options.layout.n_joints
    if unit.is_file() and unit.suffix.lower() == ".json":  # one file: a list of frames, or one frame
        data = _json(unit)
        frames = data if data and all(isinstance(f, list) for f in data) else [data]
        detections = [_json_frame(frame, f"frame {t}") for t, frame in enumerate(frames)]
        times, n_frames = list(range(len(frames))), len(frames)
        normalised_txt = False
    else:
        detections, normalised_txt = [], False
        for f in files:
            if f.suffix.lower() == ".txt":
                detections.append(_txt_frame(f, n_joints))
                normalised_txt = True
            else:
                detections.append(_json_frame(_json(f), f.name))
        times, n_frames = frame_slots(files)
    _resolve_extra(detections)
    sizes = {len(d["kp"]) for frame in detections for d in frame}
    if len(sizes) > 1:
        raise ClipError(f"detections have different keypoint counts: {sorted(sizes)}")
    v = sizes.pop() if sizes else n_joints
    slots = _slots(detections)
    n_persons = max((max(s, default=-1) for s in slots), default=-1) + 1
    ctx.options.check_clip_size(n_persons, n_frames, v)  # before the (M, T, V) arrays
    keypoints = np.full((n_persons, n_frames, v, 2), np.nan, np.float32)  # (M, T, V, 2)
    scores = np.zeros((n_persons, n_frames, v), np.float32)  # (M, T, V)
    for t, frame, frame_slots_ in zip(times, detections, slots, strict=True):
        for det, m in zip(frame, frame_slots_, strict=True):
            keypoints[m, t], scores[m, t] = det["kp"], det["vis"]
    zero = (keypoints == 0).all(axis=-1)  # Ultralytics' placeholder for a keypoint below 0.5 confidence
    finite = np.isfinite(keypoints).all(axis=-1)
    normalised = normalised_txt or ((finite & ~zero).any() and np.nanmax(np.abs(keypoints[finite])) <= 1.0)
    if normalised:
        if ctx.option("image_size") is None:
            raise ClipError(
                "the coordinates are normalised to [0, 1]: give the frame size with --image-size WxH"
            )
        img_h, img_w = ctx.option("image_size")
        keypoints *= np.array([img_w, img_h], np.float32)
    mark_missing(keypoints, scores, zero | ~(scores > 0) | ~finite)
    img_h, img_w = ctx.option("image_size") or extent_size(keypoints)
    return PoseClip(
        clip_id=fallback_clip_id(unit.stem if unit.is_file() else unit.name),
        keypoints=keypoints,
        scores=scores,
        label_name=None,
        split=None,
        img_h=int(img_h),
        img_w=int(img_w),
        source=str(unit),
        source_format=FORMAT,
    )


def _json(path: Path):
    try:
        return load_json(path)
    except ClipError as exc:
        raise ClipError(f"{path.name}: {exc}") from None


def _txt_frame(path: Path, n_joints: int) -> list[dict]:
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ClipError(f"{path.name}: cannot read: {exc}") from None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            raise ClipError(f"{path.name} line {i + 1}: not a line of numbers") from None
        rest = len(values) - 5
        dims = [(k, rest - k * n_joints) for k in (3, 2) if 0 <= rest - k * n_joints <= 2]
        if not dims:
            raise ClipError(
                f"{path.name} line {i + 1}: {len(values)} values do not fit 'cls cx cy w h' + {n_joints} keypoints "
                "(the layout's joint count) of 2 or 3 values + [conf] [track_id]"
            )
        k, _extra = dims[0]
        kp = np.asarray(values[5 : 5 + k * n_joints]).reshape(n_joints, k)
        vis = kp[:, 2] if k == 3 else np.where((kp == 0).all(axis=1), 0.0, 1.0)
        tail = values[5 + k * n_joints :]
        out.append({"kp": kp[:, :2], "vis": vis, "tail": tail, "conf": None, "track": None})
    return out


def _json_frame(frame, where: str) -> list[dict]:
    if not isinstance(frame, list):
        raise ClipError(f"{where}: expected a list of detections (Ultralytics to_json())")
    out = []
    for i, det in enumerate(frame):
        kps = det.get("keypoints") if isinstance(det, Mapping) else None
        if not isinstance(kps, Mapping) or not {"x", "y"} <= set(kps):
            raise ClipError(
                f"{where} detection {i}: needs 'keypoints' {{'x': [...], 'y': [...], 'visible': [...]}}"
            )
        x, y = np.asarray(kps["x"], np.float64), np.asarray(kps["y"], np.float64)
        vis = np.asarray(kps.get("visible", np.ones(len(x))), np.float64)
        if not (x.shape == y.shape == vis.shape) or x.ndim != 1:
            raise ClipError(f"{where} detection {i}: keypoints x, y and visible must be lists of one length")
        track = det.get("track_id")
        conf = det.get("confidence")
        out.append({"kp": np.stack([x, y], -1), "vis": vis, "tail": [], "conf": conf, "track": track})
    return out


def _resolve_extra(detections: list[list[dict]]) -> None:
    """Fill conf/track of txt detections from their trailing values (see the module docstring)."""
    singles = [d["tail"][0] for frame in detections for d in frame if len(d["tail"]) == 1]
    ids = bool(singles) and all(float(v).is_integer() for v in singles)
    for frame in detections:
        for d in frame:
            tail = d["tail"]
            if len(tail) == 2:
                d["conf"], d["track"] = tail[0], int(tail[1])
            elif len(tail) == 1:
                d["track" if ids else "conf"] = int(tail[0]) if ids else tail[0]


def _slots(detections: list[list[dict]]) -> list[list[int]]:
    tracks = [d["track"] for frame in detections for d in frame]
    if tracks and all(isinstance(tr, int) and not isinstance(tr, bool) for tr in tracks):
        slot_of = {tr: m for m, tr in enumerate(sorted(set(tracks)))}
        slots = []
        for t, frame in enumerate(detections):
            ids = [d["track"] for d in frame]
            if len(set(ids)) != len(ids):
                raise ClipError(f"frame {t}: a track_id appears twice")
            slots.append([slot_of[tr] for tr in ids])
        return slots
    slots = []
    for frame in detections:
        conf = [
            float(d["conf"]) if isinstance(d["conf"], int | float) else float(np.mean(d["vis"]))
            for d in frame
        ]
        order = sorted(range(len(frame)), key=lambda i: -conf[i])
        rank = [0] * len(frame)
        for r, i in enumerate(order):
            rank[i] = r
        slots.append(rank)
    return slots


def sniff(path: Path) -> bool:
    """A YOLO label .txt (a line of numbers, an integer class first), or Ultralytics results JSON."""
    if path.suffix.lower() == ".txt":
        return "missing_skeleton" not in path.name.lower() and _is_yolo_txt(peek_text(path, 4096))
    head = json_head(path)
    return head.startswith("[") and '"keypoints"' in head and '"visible"' in head


def _is_yolo_txt(head: str) -> bool:
    """A line of numbers, an integer class first, at least a box and two keypoints: a YOLO label file."""
    lines = head.splitlines()
    first = next((line.split() for line in lines if line.strip()), None)
    if first is None or len(first) < 11 or not first[0].isdigit():
        return False
    try:
        [float(v) for v in first]
    except ValueError:
        return False
    return True


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff, options=(IMAGE_SIZE,))
