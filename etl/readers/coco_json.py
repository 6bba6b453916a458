"""COCO keypoint JSON, one clip per file: detection results (a list of {image_id, keypoints, score, track_id?})
or a COCO-style dict with `images` and `annotations`. The clip id is the file stem; labels come from labels_csv.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from etl.pose.clip import PoseClip, Reject
from etl.readers.alphapose import alphapose_tracks, frame_numbers_of_names
from etl.readers.common import (
    ClipError,
    describe_found,
    expand_files,
    extent_size,
    fallback_clip_id,
    file_reject,
    guarded,
    load_json,
    mark_missing,
    natural_key,
    score_ranks,
)
from etl.readers.joint_order import coco_category_names, order_for_layout
from etl.readers.options import ReadContext, ReadOptions
from etl.readers.peek import json_head
from etl.readers.registry import FormatSpec

FORMAT = "coco-json"
PATTERNS = ("*.json",)
# COCO ground-truth visibility flags: 0 not labelled, 1 labelled but occluded, 2 visible
_VISIBILITY_SCORE = {0: 0.0, 1: 0.5, 2: 1.0}


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for path in expand_files(paths, PATTERNS):
        yield _read_file(path, ctx)


def _read_file(path: Path, ctx: ReadContext) -> PoseClip | Reject:
    try:
        data = load_json(path)
    except ClipError as exc:
        return file_reject(path, str(exc))
    return guarded(lambda: _clip(path, data, ctx.options), fallback_clip_id(path.stem), str(path))


def _clip(path: Path, data, options: ReadOptions) -> PoseClip:
    if isinstance(data, list):
        detections, images = data, None
    elif isinstance(data, Mapping) and isinstance(data.get("annotations"), list):
        detections, images = data["annotations"], data.get("images")
        if images is not None and not (
            isinstance(images, list) and all(isinstance(i, Mapping) for i in images)
        ):
            raise ClipError("'images' must be a list of {id, file_name, width, height} dicts")
    else:
        raise ClipError(
            "wrong top-level structure: expected a list of keypoint detections or a dict with 'images' and "
            f"'annotations', found {describe_found(data)}"
        )
    n_joints = _check_detections(detections)
    frame_ids = _frame_order(images, detections)
    frame_of = {image_id: t for t, image_id in enumerate(frame_ids)}
    for i, det in enumerate(detections):
        if det["image_id"] not in frame_of:
            raise ClipError(
                f"annotation {i} refers to image_id {det['image_id']!r}, which is not in 'images'"
            )
    person_of = _assign_persons(detections, frame_of)
    n_persons = max(person_of, default=-1) + 1
    options.check_clip_size(n_persons, len(frame_ids), n_joints)  # before the (M, T, V) arrays exist

    values = [
        np.asarray(det["keypoints"], dtype=np.float64).reshape(n_joints, 3) for det in detections
    ]  # (V, 3) each
    flags = np.concatenate([v[:, 2] for v in values]) if values else np.zeros(0)
    is_visibility = bool(np.isin(flags, (0, 1, 2)).all())

    keypoints = np.full((n_persons, len(frame_ids), n_joints, 2), np.nan, np.float32)  # (M, T, V, 2)
    scores = np.zeros((n_persons, len(frame_ids), n_joints), np.float32)  # (M, T, V)
    for det, person, joints in zip(detections, person_of, values, strict=True):
        t = frame_of[det["image_id"]]
        keypoints[person, t] = joints[:, :2]
        if is_visibility:
            scores[person, t] = [_VISIBILITY_SCORE[int(v)] for v in joints[:, 2]]
        else:
            scores[person, t] = joints[:, 2]
    mark_missing(keypoints, scores, ~(scores > 0))
    names = coco_category_names(data, detections, n_joints)
    order = None if names is None else order_for_layout(names, options.layout, "categories[].keypoints")
    if order is not None:  # the file's joints, read in the layout's order by name
        keypoints, scores = keypoints[:, :, order], scores[:, :, order]

    img_h, img_w = _image_size(images) or extent_size(keypoints)
    return PoseClip(
        clip_id=fallback_clip_id(path.stem),
        keypoints=keypoints,
        scores=scores,
        label_name=None,
        split=None,
        img_h=img_h,
        img_w=img_w,
        source=str(path),
        source_format=FORMAT,
    )


def _check_detections(detections: list) -> int:
    """The joint count V shared by every detection; ClipError naming the first bad detection."""
    n_values = None
    for i, det in enumerate(detections):
        if not isinstance(det, Mapping) or "image_id" not in det or "keypoints" not in det:
            raise ClipError(f"detection {i} must be a dict with 'image_id' and 'keypoints'")
        kps = det["keypoints"]
        if not isinstance(kps, list) or not all(isinstance(v, int | float) for v in kps):
            raise ClipError(f"detection {i}: 'keypoints' must be a flat list of numbers [x, y, s] * V")
        if len(kps) % 3:
            raise ClipError(
                f"detection {i}: 'keypoints' has {len(kps)} values, not a multiple of 3 ([x, y, s] * V)"
            )
        if n_values is None:
            n_values = len(kps)
        elif len(kps) != n_values:
            raise ClipError(
                f"detection {i} (image {det['image_id']!r}) has {len(kps)} keypoint values, the first has {n_values}"
            )
        if isinstance(det["image_id"], list | dict):
            raise ClipError(f"detection {i}: 'image_id' must be a number or a string")
    return (n_values or 0) // 3


def _id_order(ids) -> list:
    if all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return sorted(ids)
    return sorted(ids, key=lambda i: natural_key(str(i)))


def _frame_order(images: list | None, detections: list) -> list:
    """Image ids in frame order: images by frame_index, else file_name, else id; without images, sorted ids."""
    if images is None:
        ids = {det["image_id"] for det in detections}
        numbered = frame_numbers_of_names(ids)  # AlphaPose names frames "0.jpg", "1.jpg", ...
        if numbered is not None and _looks_like_frame_indices(set(numbered.values())):
            by_number = {n: image_id for image_id, n in numbered.items()}
            lo, hi = min(by_number), max(by_number)
            return [by_number.get(n, ("no detection", n)) for n in range(lo, hi + 1)]
        if _looks_like_frame_indices(ids):
            # per-video results number images by frame (from 0 or 1): a frame between the first and the last
            # image nobody was detected in is a real, empty frame
            return list(range(min(ids), max(ids) + 1))
        return _id_order(ids)
    if any("id" not in image or isinstance(image["id"], list | dict) for image in images):
        raise ClipError("every entry of 'images' needs an 'id' (a number or a string)")
    if len({image["id"] for image in images}) != len(images):
        raise ClipError("'images' lists an id twice")
    if all("frame_index" in image for image in images):
        ordered = sorted(images, key=lambda image: image["frame_index"])
    elif all("file_name" in image for image in images):
        ordered = sorted(images, key=lambda image: natural_key(str(image["file_name"])))
    else:
        by_id = {image["id"]: image for image in images}
        ordered = [by_id[image_id] for image_id in _id_order(list(by_id))]
    return [image["id"] for image in ordered]


def _looks_like_frame_indices(ids: set) -> bool:
    """Integer frame numbers with a few gaps (missed frames), not COCO-style image numbers like 397133."""
    if not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return False
    return min(ids) >= 0 and max(ids) - min(ids) + 1 <= 2 * len(ids) + 8


def _assign_persons(detections: list, frame_of: dict) -> list[int]:
    """Person index per detection: by track_id when every detection has one (AlphaPose's tracker writes it as
    `idx`), else by score rank in its frame."""
    detections = alphapose_tracks(detections)
    tracked = [det.get("track_id") is not None for det in detections]
    if any(tracked) and not all(tracked):
        raise ClipError(
            f"{tracked.count(False)} of {len(detections)} detections have no 'track_id' (all or none must)"
        )
    if any(tracked):
        tracks = _id_order({det["track_id"] for det in detections})
        person_of_track = {track: m for m, track in enumerate(tracks)}
        seen: set = set()
        for det in detections:
            key = (det["image_id"], det["track_id"])
            if key in seen:
                raise ClipError(f"track_id {det['track_id']!r} appears twice in image {det['image_id']!r}")
            seen.add(key)
        return [person_of_track[det["track_id"]] for det in detections]
    # person 0 = the most confident detection of its frame; ties keep file order
    person_of = [0] * len(detections)
    by_frame: dict[int, list[int]] = {}
    for i, det in enumerate(detections):
        by_frame.setdefault(frame_of[det["image_id"]], []).append(i)
    for members in by_frame.values():
        for i, rank in zip(
            members, score_ranks([_detection_score(detections[i]) for i in members]), strict=True
        ):
            person_of[i] = rank
    return person_of


def _detection_score(det: Mapping) -> float:
    score = det.get("score")
    if isinstance(score, int | float):
        return float(score)
    confidences = det["keypoints"][2::3]  # no detection score (ground truth): the mean keypoint flag
    return float(np.mean(confidences)) if confidences else 0.0


def _image_size(images: list | None) -> tuple[int, int] | None:
    if not images or not all(
        isinstance(i.get("height"), int) and isinstance(i.get("width"), int) for i in images
    ):
        return None
    return max(i["height"] for i in images), max(i["width"] for i in images)


def sniff(path: Path) -> bool:
    """A list of detections, or a dataset dict with annotations/images (but no OpenPose 'people')."""
    head = json_head(path)
    return head.startswith("[") or (
        '"people"' not in head and ('"annotations"' in head or '"images"' in head)
    )


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff)
