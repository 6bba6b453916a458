"""OpenPose JSON output: one file per frame (`{"people": [{"pose_keypoints_2d": [x, y, c] * V}]}`), one folder
per clip. The layout decides V: len(pose_keypoints_2d) / 3 must equal layout.n_joints.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from etl.pose.clip import PoseClip, Reject
from etl.pose.skeleton import LAYOUTS, Layout
from etl.readers.common import (
    ClipError,
    extent_size,
    fallback_clip_id,
    guarded,
    load_json,
    mark_missing,
    natural_key,
    score_ranks,
)
from etl.readers.frame_gaps import frame_slots
from etl.readers.options import ReadContext, ReadOptions
from etl.readers.peek import json_head
from etl.readers.registry import FormatSpec

FORMAT = "openpose-json"
_TRAILING_NUMBER = re.compile(r"(\d+)(?=\D*$)")
HINT_FAMILIES = ("openpose", "coco")  # OpenPose itself, and AlphaPose/MMPose writing OpenPose-style JSON


def clip_folders(paths: list[Path]) -> list[tuple[Path, list[Path]]]:
    """(clip folder, frame files) per clip, in a deterministic order.

    A folder holding .json files is one clip; a folder holding only sub-folders is a collection, each
    sub-folder with .json files a clip. Files given one by one are grouped by their folder.
    """
    clips: dict[Path, list[Path]] = {}
    for path in paths:
        if path.is_dir():
            frames = _json_files(path)
            if frames:
                clips.setdefault(path, frames)
                continue
            for sub in sorted((p for p in path.iterdir() if p.is_dir()), key=natural_key):
                sub_frames = _json_files(sub)
                if sub_frames:
                    clips.setdefault(sub, sub_frames)
        else:
            files = clips.setdefault(path.parent, [])
            if path not in files:
                files.append(path)
    return [(folder, sorted(files, key=frame_key)) for folder, files in clips.items()]


def _json_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".json"]


def frame_key(path: Path) -> tuple:
    """Frames order by the last number in the name (video_000000000012_keypoints.json -> 12)."""
    match = _TRAILING_NUMBER.search(path.stem)
    return (0, int(match.group(1)), natural_key(path.name)) if match else (1, 0, natural_key(path.name))


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for folder, frames in clip_folders(paths):
        clip_id = fallback_clip_id(folder.name)
        yield guarded(
            lambda folder=folder, frames=frames: _clip(folder, frames, ctx.options),
            clip_id,
            str(folder),
        )


def _clip(folder: Path, frames: list[Path], options: ReadOptions) -> PoseClip:
    layout = options.layout
    n_joints = layout.n_joints
    options.check_clip_size(1, len(frames), n_joints)  # one frame file per frame: refuse before parsing them
    people_per_frame = []  # per frame: list of (person_id | None, (V, 3) array)
    for frame in frames:
        try:
            data = load_json(frame)
        except ClipError as exc:
            raise ClipError(f"frame {frame.name}: {exc}") from None
        if not isinstance(data, Mapping) or not isinstance(data.get("people"), list):
            raise ClipError(f'frame {frame.name}: wrong structure, expected {{"people": [...]}}')
        people = []
        for p, person in enumerate(data["people"]):
            values = person.get("pose_keypoints_2d") if isinstance(person, Mapping) else None
            if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
                raise ClipError(
                    f"frame {frame.name} person {p}: 'pose_keypoints_2d' must be a list of numbers"
                )
            if len(values) != 3 * n_joints:
                raise ClipError(_joint_count_message(frame, p, len(values), layout))
            people.append((_person_id(person), np.asarray(values, np.float32).reshape(n_joints, 3)))
        people_per_frame.append(people)

    slots = _assign_persons(people_per_frame, frames)
    n_persons = max((max(s, default=-1) for s in slots), default=-1) + 1
    times, n_frames = frame_slots(frames)  # a frame number without a file is an empty frame
    options.check_clip_size(n_persons, n_frames, n_joints)  # before the (M, T, V) arrays exist
    keypoints = np.full((n_persons, n_frames, n_joints, 2), np.nan, np.float32)  # (M, T, V, 2)
    scores = np.zeros((n_persons, n_frames, n_joints), np.float32)  # (M, T, V)
    for t, people, person_slots in zip(times, people_per_frame, slots, strict=True):
        for (_, joints), m in zip(people, person_slots, strict=True):
            keypoints[m, t] = joints[:, :2]
            scores[m, t] = joints[:, 2]
    # OpenPose writes x = y = c = 0 for an undetected joint; any zero confidence carries no position
    mark_missing(keypoints, scores, ~(scores > 0))
    img_h, img_w = extent_size(keypoints)
    return PoseClip(
        clip_id=fallback_clip_id(folder.name),
        keypoints=keypoints,
        scores=scores,
        label_name=None,
        split=None,
        img_h=img_h,
        img_w=img_w,
        source=str(folder),
        source_format=FORMAT,
    )


def _joint_count_message(frame: Path, person: int, n_values: int, layout: Layout) -> str:
    found = n_values / 3
    # only layouts that pose estimators writing this format produce (a Kinect layout of the same size is no help)
    candidates = [
        name for name, lay in LAYOUTS.items() if lay.n_joints * 3 == n_values and lay.family in HINT_FAMILIES
    ]
    hint = f"; --layout {' or '.join(candidates)} matches" if candidates else ""
    return (
        f"frame {frame.name} person {person}: pose_keypoints_2d has {n_values} values = {found:g} joints, but layout "
        f"{layout.name!r} expects {layout.n_joints} joints ({3 * layout.n_joints} values){hint}"
    )


def _person_id(person: Mapping) -> int | None:
    """OpenPose's person_id ([-1] when untracked) as an int >= 0, else None."""
    pid = person.get("person_id")
    if isinstance(pid, list):
        pid = pid[0] if pid else None
    if isinstance(pid, int) and not isinstance(pid, bool) and pid >= 0:
        return pid
    return None


def _assign_persons(people_per_frame: list[list], frames: list[Path]) -> list[list[int]]:
    """Person slot per detected person: by person_id when every person has one, else by mean confidence rank."""
    ids = [pid for people in people_per_frame for pid, _ in people]
    if ids and all(pid is not None for pid in ids):
        slot_of = {pid: m for m, pid in enumerate(sorted(set(ids)))}
        slots = []
        for frame, people in zip(frames, people_per_frame, strict=True):
            frame_ids = [pid for pid, _ in people]
            if len(set(frame_ids)) != len(frame_ids):
                raise ClipError(f"frame {frame.name}: a person_id appears twice")
            slots.append([slot_of[pid] for pid in frame_ids])
        return slots
    # person 0 = the most confident (mean joint confidence) of its frame
    return [score_ranks([float(joints[:, 2].mean()) for _, joints in people]) for people in people_per_frame]


def sniff(path: Path) -> bool:
    head = json_head(path)
    return head.startswith("{") and '"people"' in head


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff)
