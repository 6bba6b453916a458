"""MediaPipe Pose landmarks (33 per person, x and y normalised to [0, 1] by the frame size), one file per clip.

CSV, either form (column names are case-insensitive):
* wide: one row per frame (and person): optional `frame` and `person` columns, then per landmark `<lm>_x`,
  `<lm>_y`, optional `<lm>_z`, `<lm>_visibility` where <lm> is the landmark number 0-32 or its MediaPipe name
  (`nose_x`, `left_wrist_visibility`); `x0`/`x_0`/`landmark_0_x` spellings work too;
* long: columns `frame`, `landmark` (number or name), `x`, `y`, optional `z`, `visibility`, `person`.
JSON: a list of frames (or `{"frames": [...]}`), each `{"frame": n, "landmarks": [{"x", "y", "z", "visibility"},
...]}` (`pose_landmarks` also accepted; a list of such lists = several persons), or a bare list of 33 landmarks.

Pixels = x * img_w, y * img_h with `image_size` (required). `visibility` is the score (1.0 without it); empty or
NaN values are missing joints. A `frame` number without a row is an empty frame; z is not used.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from etl.pose.clip import PoseClip, Reject
from etl.pose.skeleton import MEDIAPIPE33
from etl.readers.common import (
    ClipError,
    describe_error,
    expand_files,
    fallback_clip_id,
    guarded,
    load_json,
    mark_missing,
)
from etl.readers.format_options import IMAGE_SIZE
from etl.readers.frame_gaps import check_frame_span
from etl.readers.options import ReadContext
from etl.readers.peek import first_line, json_head
from etl.readers.registry import FormatSpec

FORMAT = "mediapipe"
PATTERNS = ("*.csv", "*.json")
N_LANDMARKS = 33
_NAMES = {name: i for i, name in enumerate(MEDIAPIPE33.joints)}
_COORD = {"x": 0, "y": 1, "visibility": 2, "v": 2, "vis": 2}
_WIDE = (
    re.compile(r"^(?:landmark_?|lm_?)?(?P<lm>\d+|[a-z_]+?)_(?P<c>x|y|z|visibility|vis|v|presence)$"),
    re.compile(r"^(?P<c>x|y|z|visibility|vis|v)_?(?P<lm>\d+)$"),
)
_FRAME_COLUMNS = ("frame", "frame_index", "frame_id", "frame_idx")
_PERSON_COLUMNS = ("person", "person_id", "track_id", "pose_id")


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for path in expand_files(paths, PATTERNS):
        clip_id = fallback_clip_id(path.stem)
        yield guarded(lambda path=path: _clip(path, ctx), clip_id, str(path))


def _clip(path: Path, ctx: ReadContext) -> PoseClip:
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _json_rows(load_json(path))
    # rows: (frame or None, person, (33, 3) x y visibility)
    if not rows:
        raise ClipError("no landmarks")
    frames = [r[0] for r in rows]
    if all(f is None for f in frames):
        times = _sequential(rows)
    elif any(f is None for f in frames):
        raise ClipError("some rows have a frame number and some do not")
    else:
        start = min(frames)
        times = [f - start for f in frames]
    persons = sorted({r[1] for r in rows}, key=str)
    slot = {p: m for m, p in enumerate(persons)}
    n_frames = max(times) + 1
    check_frame_span(n_frames, len(rows), "frame numbers")
    ctx.options.check_clip_size(len(persons), n_frames, N_LANDMARKS)  # before the (M, T, V) arrays
    values = np.full((len(persons), n_frames, N_LANDMARKS, 3), np.nan)  # (M, T, 33, x y vis)
    seen = set()
    for t, (frame, person, lm) in zip(times, rows, strict=True):
        if (t, person) in seen:
            raise ClipError(f"frame {frame if frame is not None else t} has person {person} twice")
        seen.add((t, person))
        values[slot[person], t] = lm
    xy = values[..., :2]
    finite = np.isfinite(xy).all(axis=-1)
    if finite.any() and not (xy[finite].min() >= -1.0 and xy[finite].max() <= 2.0):
        raise ClipError("x, y are not normalised to [0, 1] (MediaPipe's normalised landmarks are expected)")
    if ctx.option("image_size") is None:
        raise ClipError(
            "MediaPipe landmarks are normalised to [0, 1]: give the frame size with --image-size WxH"
        )
    img_h, img_w = ctx.option("image_size")
    keypoints = (xy * (img_w, img_h)).astype(np.float32)
    scores = np.where(np.isnan(values[..., 2]), 1.0, values[..., 2]).astype(np.float32)
    mark_missing(keypoints, scores, ~finite | ~(scores > 0))
    return PoseClip(
        clip_id=fallback_clip_id(path.stem),
        keypoints=keypoints,
        scores=scores,
        label_name=None,
        split=None,
        img_h=int(img_h),
        img_w=int(img_w),
        source=str(path),
        source_format=FORMAT,
    )


def _sequential(rows: list) -> list[int]:
    """Without frame numbers a row is a frame (a new frame starts when a person comes back)."""
    times, t, in_frame = [], -1, set()
    for _, person, _ in rows:
        if t < 0 or person in in_frame:
            t, in_frame = t + 1, set()
        in_frame.add(person)
        times.append(t)
    return times


def _landmark(token: str) -> int | None:
    if token.isdigit():
        return int(token) if int(token) < N_LANDMARKS else None
    return _NAMES.get(token)


def _csv_rows(path: Path) -> list:
    try:
        table = pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for bad CSV
        raise ClipError(f"not a readable CSV file: {describe_error(exc)}") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    frame_col = next((c for c in _FRAME_COLUMNS if c in table.columns), None)
    person_col = next((c for c in _PERSON_COLUMNS if c in table.columns), None)
    if {"landmark", "x", "y"} <= set(table.columns):
        return _long_rows(table, frame_col, person_col)
    columns: dict[tuple[int, int], str] = {}
    for col in table.columns:
        for pattern in _WIDE:
            match = pattern.fullmatch(col)
            if match and match["c"] in _COORD and (lm := _landmark(match["lm"])) is not None:
                columns[(lm, _COORD[match["c"]])] = col
                break
    found = {lm for lm, c in columns if c in (0, 1)}
    if not found:
        raise ClipError(
            "no landmark columns: expected <landmark>_x, <landmark>_y[, _z, _visibility] (landmark 0-32 or a "
            "MediaPipe name) or the long form frame,landmark,x,y[,z,visibility]"
        )
    lacking = [lm for lm in range(N_LANDMARKS) if (lm, 0) not in columns or (lm, 1) not in columns]
    if lacking:
        raise ClipError(f"no x/y columns for landmark(s) {', '.join(map(str, lacking))} of MediaPipe's 33")
    numeric = table.apply(pd.to_numeric, errors="coerce")
    block = np.full((len(table), N_LANDMARKS, 3), np.nan)  # (rows, 33, x y visibility)
    for (j, c), col in columns.items():
        block[:, j, c] = numeric[col].to_numpy(dtype=np.float64)
    return list(zip(_frames(table, frame_col), _persons(table, person_col), block, strict=True))


def _long_rows(table: pd.DataFrame, frame_col: str | None, person_col: str | None) -> list:
    if frame_col is None:
        raise ClipError("the long form (one row per landmark) needs a 'frame' column")
    vis_col = next((c for c in ("visibility", "vis", "v") if c in table.columns), None)
    landmarks = [_landmark(str(v).strip().lower()) for v in table["landmark"]]
    bad = next((i for i, lm in enumerate(landmarks) if lm is None), None)
    if bad is not None:
        raise ClipError(
            f"row {bad + 2}: unknown landmark {table['landmark'].iloc[bad]!r} (0-32 or a MediaPipe name)"
        )
    columns = ["x", "y"] + ([vis_col] if vis_col else [])
    xyv = np.full((len(table), 3), np.nan)  # (rows, x y visibility)
    for c, col in enumerate(columns):
        xyv[:, c] = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float64)
    groups: dict[tuple, np.ndarray] = {}
    rows = zip(_frames(table, frame_col), _persons(table, person_col), landmarks, xyv, strict=True)
    for frame, person, lm, values in rows:
        groups.setdefault((frame, person), np.full((N_LANDMARKS, 3), np.nan))[lm] = values
    return [
        (frame, person, values) for (frame, person), values in sorted(groups.items(), key=lambda kv: kv[0])
    ]


def _frames(table: pd.DataFrame, col: str | None) -> list[int | None]:
    """Frame number of every row (None without a frame column); ClipError naming the first bad row."""
    if col is None:
        return [None] * len(table)
    values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values != np.floor(values))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ClipError(f"row {i + 2}: frame {table[col].iloc[i]!r} is not a frame number")
    return [int(v) for v in values]


def _persons(table: pd.DataFrame, col: str | None) -> list:
    return [0] * len(table) if col is None else [str(v) for v in table[col]]


def _json_rows(data) -> list:
    if isinstance(data, Mapping) and isinstance(data.get("frames"), list):
        data = data["frames"]
    if not isinstance(data, list):
        raise ClipError(
            "wrong structure: expected a list of frames {frame, landmarks: [{x, y, z, visibility}]}"
        )
    if len(data) == N_LANDMARKS and all(isinstance(d, Mapping) and "x" in d for d in data):
        data = [data]  # one frame: a bare list of landmarks
    rows = []
    for t, frame in enumerate(data):
        number = None
        if isinstance(frame, Mapping):
            number = frame.get("frame", frame.get("frame_index"))
            if number is not None and (not isinstance(number, int) or isinstance(number, bool) or number < 0):
                raise ClipError(f"frame {t}: 'frame' must be a frame number")
            frame = frame.get("landmarks", frame.get("pose_landmarks"))
        if not isinstance(frame, list):
            raise ClipError(f"frame {t}: no 'landmarks' list")
        people = frame if frame and all(isinstance(p, list) for p in frame) else [frame] if frame else []
        for person, landmarks in enumerate(people):
            if len(landmarks) != N_LANDMARKS or not all(isinstance(d, Mapping) for d in landmarks):
                raise ClipError(
                    f"frame {t} person {person}: expected {N_LANDMARKS} landmarks {{x, y, z, visibility}}"
                )
            lm = np.array(
                [[d.get("x", np.nan), d.get("y", np.nan), d.get("visibility", np.nan)] for d in landmarks],
                float,
            )
            rows.append((number, person, lm))
        if not people and number is None:
            raise ClipError(f"frame {t}: no landmarks and no frame number (an empty frame needs its 'frame')")
    return rows


def sniff(path: Path) -> bool:
    """Landmark JSON (`landmarks`/`pose_landmarks`, or a list with `visibility`) or a landmark CSV."""
    if path.suffix.lower() == ".csv":
        first = first_line(path)
        columns = {c.strip() for c in first.split(",")}
        return "visibility" in first or {"landmark", "x", "y"} <= columns or {"nose_x", "nose_y"} <= columns
    head = json_head(path)
    return (
        '"landmarks"' in head
        or '"pose_landmarks"' in head
        or (head.startswith("[") and '"visibility"' in head)
    )


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff, options=(IMAGE_SIZE,))
