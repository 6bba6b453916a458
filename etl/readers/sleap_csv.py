"""SLEAP's analysis CSV export (File > Export Analysis CSV, or sleap-io `format="sleap"`): one row per instance,
columns `track, frame_idx, instance.score, <node>.x, <node>.y, <node>.score` (read by name, in any order).

The same handling as the SLEAP analysis HDF5 of the h5 reader: one person per track (tracks in natural order of
their names; untracked instances of a frame after them, the most confident first), nodes named like the layout's
joints read in its order (an animal skeleton keeps the file's order), a point without a score (user-labelled) is
certain, an empty or NaN coordinate is missing. Image size: the extent. The file carries no action label: give
one with a labels manifest.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from etl.pose.clip import PoseClip, Reject
from etl.readers.common import (
    ClipError,
    describe_error,
    expand_files,
    extent_size,
    fallback_clip_id,
    file_reject,
    guarded,
    mark_missing,
    natural_key,
    score_ranks,
)
from etl.readers.frame_gaps import check_frame_span
from etl.readers.joint_order import order_if_named
from etl.readers.options import ReadContext
from etl.readers.peek import first_line
from etl.readers.registry import FormatSpec

FORMAT = "sleap-csv"
PATTERNS = ("*.csv",)
_REQUIRED = ("track", "frame_idx")


def sniff(path: Path) -> bool:
    """A CSV whose header names `track`, `frame_idx` and `<node>.x` columns."""
    if path.suffix.lower() != ".csv":
        return False
    columns = [c.strip() for c in first_line(path).split(",")]
    return all(c in columns for c in _REQUIRED) and any(c.endswith(".x") for c in columns)


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for path in expand_files(paths, PATTERNS):
        try:
            header, rows = _load(path)
        except ClipError as exc:
            yield file_reject(path, str(exc))
            continue
        yield guarded(lambda path=path, h=header, r=rows: _clip(path, h, r, ctx), _clip_id(path), str(path))


def _clip_id(path: Path) -> str:
    """`session1.cam0.analysis.csv` -> `session1.cam0` (SLEAP names its exports <labels>.<video>.analysis)."""
    return fallback_clip_id(path.stem.removesuffix(".analysis"))


def _load(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ClipError(f"not a readable CSV file: {describe_error(exc)}") from None
    if not rows:
        raise ClipError("empty file: expected SLEAP's header track, frame_idx, instance.score, <node>.x, ...")
    header = [c.strip() for c in rows[0]]
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise ClipError(f"not a SLEAP analysis CSV: no {', '.join(missing)} column")
    return header, rows[1:]


def _number(text: str) -> float:
    text = text.strip()
    return float(text) if text else math.nan


def _clip(path: Path, header: list[str], rows: list[list[str]], ctx: ReadContext) -> PoseClip:
    column = {name: j for j, name in enumerate(header)}
    nodes = [c[:-2] for c in header if c.endswith(".x") and f"{c[:-2]}.y" in column]
    if not nodes:
        raise ClipError("no <node>.x / <node>.y column pairs")
    if not rows:
        raise ClipError("no instances")
    try:
        frames = [int(float(row[column["frame_idx"]])) for row in rows]
        values = np.array(  # (rows, V, 3): x, y, score
            [
                [
                    [
                        _number(row[column[f"{n}.x"]]),
                        _number(row[column[f"{n}.y"]]),
                        _number(row[column[f"{n}.score"]]) if f"{n}.score" in column else math.nan,
                    ]
                    for n in nodes
                ]
                for row in rows
            ],
            np.float64,
        )
        instance_scores = [
            _number(row[column["instance.score"]]) if "instance.score" in column else math.nan for row in rows
        ]
    except (ValueError, IndexError):
        raise ClipError("a row has a value that is not a number, or fewer cells than the header") from None
    if min(frames) < 0:
        raise ClipError("frame_idx must be >= 0")
    slots = _person_slots([row[column["track"]].strip() for row in rows], frames, instance_scores)
    n_frames, n_persons = max(frames) + 1, max(slots) + 1  # SLEAP numbers the video's frames from 0
    check_frame_span(n_frames, len(rows), "frame_idx values")
    ctx.options.check_clip_size(n_persons, n_frames, len(nodes))  # before the (M, T, V) arrays
    keypoints = np.full((n_persons, n_frames, len(nodes), 2), np.nan, np.float32)  # (M, T, V, 2)
    scores = np.full((n_persons, n_frames, len(nodes)), np.nan, np.float32)  # (M, T, V)
    for i, (m, t) in enumerate(zip(slots, frames, strict=True)):
        if np.isfinite(keypoints[m, t]).any():
            raise ClipError(f"two instances of one track in frame {t}")
        keypoints[m, t], scores[m, t] = values[i, :, :2], values[i, :, 2]
    present = np.isfinite(keypoints).all(axis=-1)  # (M, T, V)
    scores[present & np.isnan(scores)] = 1.0  # user-labelled points carry no score: certain
    scores[~present] = 0.0
    mark_missing(keypoints, scores, ~present | ~(scores > 0))
    order = order_if_named(nodes, ctx.options.layout, "SLEAP node names")
    if order is not None:
        keypoints, scores = keypoints[:, :, order], scores[:, :, order]
    img_h, img_w = extent_size(keypoints)
    return PoseClip(
        clip_id=_clip_id(path),
        keypoints=np.ascontiguousarray(keypoints),
        scores=np.ascontiguousarray(scores),
        label_name=None,
        split=None,
        img_h=img_h,
        img_w=img_w,
        source=str(path),
        source_format=FORMAT,
    )


def _person_slots(tracks: list[str], frames: list[int], instance_scores: list[float]) -> list[int]:
    """The person slot of every row: named tracks first, in natural order of their names; the untracked
    instances of a frame (empty or 'nan' track) take the next slots, the most confident first."""
    untracked = {"", "nan", "none"}
    names = sorted({t for t in tracks if t.lower() not in untracked}, key=natural_key)
    slot_of = {name: m for m, name in enumerate(names)}
    slots = [slot_of.get(t, -1) for t in tracks]
    by_frame: dict[int, list[int]] = {}
    for i, t in enumerate(tracks):
        if t.lower() in untracked:
            by_frame.setdefault(frames[i], []).append(i)
    for rows in by_frame.values():
        confidence = [instance_scores[i] if np.isfinite(instance_scores[i]) else 0.0 for i in rows]
        for i, rank in zip(rows, score_ranks(confidence), strict=True):
            slots[i] = len(names) + rank
    return slots


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff)
