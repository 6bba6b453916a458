"""Helpers shared by the readers: deterministic file expansion, joint-missing conventions, file-level rejects."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject, safe_clip_id
from etl.pose.limits import LimitError

_DIGITS = re.compile(r"(\d+)")


def natural_key(path: Path | str) -> tuple:
    """Sort key that orders 'a2' before 'a10' (numbers compare as numbers), deterministic for any names."""
    parts = _DIGITS.split(str(path))
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts)


# stems of the documentation files datasets ship beside their pose files (README.txt, LICENSE, SOURCE.txt, ...)
_DOC_STEMS = {
    "readme",
    "license",
    "licence",
    "copying",
    "source",
    "sources",
    "notes",
    "citation",
    "changelog",
}


def is_side_file(path: Path) -> bool:
    """A hidden file, or a dataset's documentation file (README, LICENSE, SOURCE, ...): never pose data, so
    skipped when a folder is expanded (a file given by name is still read)."""
    return path.name.startswith(".") or path.stem.lower() in _DOC_STEMS


def expand_files(paths: Iterable[Path], patterns: tuple[str, ...]) -> list[Path]:
    """Files given as-is, folders expanded recursively to the files matching `patterns` (side files left out,
    see `is_side_file`), naturally sorted.

    The user's path order is kept; a file reached twice is listed once.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found = {
                f
                for pattern in patterns
                for f in path.rglob(pattern)
                if f.is_file()
                and not is_side_file(f)
                and not any(part.startswith(".") for part in f.relative_to(path).parent.parts)  # .git/...
            }
            candidates = sorted(found, key=natural_key)
        else:
            candidates = [path]
        for f in candidates:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def existing_inputs(paths: Iterable[Path | str], *, all_required: bool = False) -> list[Path]:
    """The input paths that exist; ActrecError when none does (with `all_required`: when any does not)."""
    paths = [Path(p) for p in paths]
    existing = [p for p in paths if p.exists()]
    if all_required and len(existing) < len(paths):
        raise ActrecError(f"input not found: {', '.join(str(p) for p in paths if not p.exists())}")
    if not existing:
        raise ActrecError(
            f"none of the input paths exist: {', '.join(map(str, paths)) or '(no paths given)'}"
        )
    return existing


class ClipError(ValueError):
    """A clip (or file) that cannot be read, with a message written for the user."""


def load_json(path: Path):
    """Parsed JSON, or ClipError saying why the file is not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ClipError(f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ClipError(f"not UTF-8 text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ClipError(f"not valid JSON (truncated or corrupt?): {exc}") from None
    except RecursionError:  # '[[[[...' nested deeper than Python's parser goes
        raise ClipError("JSON nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ClipError(f"unreadable JSON value: {exc}") from None


def describe_found(value, max_keys: int | None = None) -> str:
    """What a file holds instead of the expected structure: 'a dict with keys a, b' or the type's name."""
    if isinstance(value, Mapping):
        keys = list(value)[:max_keys]
        return f"a dict with keys {', '.join(map(str, keys)) or 'none'}"
    return type(value).__name__


def score_ranks(scores: Sequence[float]) -> list[int]:
    """Rank of each detection among its frame's: 0 = the highest score; ties keep the input order.

    Used to number persons without a track id (person 0 = the most confident detection of a frame)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    ranks = [0] * len(scores)
    for rank, i in enumerate(order):
        ranks[i] = rank
    return ranks


def guarded(build: Callable[[], PoseClip], clip_id: str, source: str) -> PoseClip | Reject:
    """Run `build`; any failure becomes a Reject naming the source, so one bad clip never stops a read."""
    try:
        return build()
    except (ClipError, LimitError) as exc:
        return Reject(clip_id, source, f"{source}: {exc}")
    except Exception as exc:  # unexpected content: report it, keep reading the other clips
        return Reject(clip_id, source, f"{source}: cannot parse clip: {describe_error(exc)}")


def fallback_clip_id(raw: str, default: str = "clip") -> str:
    """`safe_clip_id`, or `default` when `raw` has no usable character (used for rejects, never raises)."""
    try:
        return safe_clip_id(raw)
    except ValueError:
        return default


def file_reject(path: Path, reason: str) -> Reject:
    """A Reject for a whole file; the reason names the file so a user can find it."""
    return Reject(fallback_clip_id(path.stem), str(path), f"{path}: {reason}")


def refuse_complex(array: np.ndarray, name: str) -> None:
    """Converting complex values to float32 silently drops the imaginary part: refuse them instead."""
    if np.iscomplexobj(array):
        raise ClipError(
            f"'{name}' is complex-valued ({array.dtype}): coordinates and scores must be real numbers"
        )


def describe_error(exc: BaseException) -> str:
    """A one-line description of an unexpected parse failure."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# What a clip with 3D joints holds per joint, float32: (x, y), (x, y, z) and the score -- (M, T, V, 6) -- which
# readers check against max_clip_bytes (check_array_size) beside check_clip_size's 2D count.
THREE_D_CLIP = "a clip with 3D joints ((x, y), (x, y, z) and a score per joint)"


def with_3d(clip: PoseClip, joints: np.ndarray | None) -> PoseClip:
    """`clip` with the 3D joints a file stores beside its 2D keypoints (h5/npz `keypoints3d`, laid out like
    `keypoints`: (T, M, V, 3), or (T, V, 3) for one person); NaN where the 2D joint is missing. ClipError when
    the shape does not match."""
    if joints is None:
        return clip
    arr = np.asarray(joints)
    if arr.ndim == 3:  # (T, V, 3): a single person
        arr = arr[:, None]
    expected = (clip.n_frames, clip.n_persons, clip.keypoints.shape[2], 3)  # (T, M, V, 3) as stored
    if arr.shape != expected or not np.issubdtype(arr.dtype, np.number):
        raise ClipError(
            f"'keypoints3d' must be numeric (T, M, V, 3) = {expected} to match 'keypoints', found shape "
            f"{tuple(np.shape(joints))} dtype {arr.dtype}"
        )
    refuse_complex(arr, "keypoints3d")
    keypoints3d = np.ascontiguousarray(arr.astype(np.float32).transpose(1, 0, 2, 3))  # (M, T, V, 3)
    keypoints3d[~(clip.scores > 0)] = np.nan
    return dataclasses.replace(clip, keypoints3d=keypoints3d)


def mark_missing(keypoints: np.ndarray, scores: np.ndarray, missing: np.ndarray) -> None:
    """In place: joints where `missing` is True get NaN coordinates and score 0 (the PoseClip convention).

    keypoints (M, T, V, 2), scores (M, T, V), missing (M, T, V) bool
    """
    keypoints[missing] = np.nan
    scores[missing] = 0.0


def extent_size(keypoints: np.ndarray) -> tuple[int, int]:
    """(img_h, img_w) for formats without an image size: the smallest frame holding every finite keypoint.

    A coordinate x lies in pixel column floor(x), so the width is floor(max x) + 1 (at least 1).
    keypoints: (M, T, V, 2)
    """
    finite = np.isfinite(keypoints).all(axis=-1)
    if not finite.any():
        return 1, 1
    xs = keypoints[..., 0][finite]
    ys = keypoints[..., 1][finite]
    img_w = max(1, math.floor(float(xs.max())) + 1)
    img_h = max(1, math.floor(float(ys.max())) + 1)
    return img_h, img_w


def as_text(value) -> str:
    """A str from the str/bytes/0-d/1-element array values that MATLAB, HDF5 and numpy hand back."""
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size == 1 else value.tolist()
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    return str(value)


def as_scalar(value):
    """A plain Python scalar (int/float/str/bool) from numpy/HDF5 scalars, or None when `value` is not one."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return None


def as_int(value, what: str) -> int:
    """An int from a scalar that must be integral (3, 3.0, np.int64(3), b'3'); ClipError names `what`."""
    scalar = as_scalar(value)
    if isinstance(scalar, str):
        scalar = scalar.strip()
        if re.fullmatch(r"-?\d{1,30}", scalar):  # longer digit strings are no label or size
            return int(scalar)
        raise ClipError(f"{what} must be an integer, found {scalar!r}")
    if isinstance(scalar, bool) or scalar is None:
        raise ClipError(f"{what} must be an integer, found {value!r}")
    if isinstance(scalar, float) and not scalar.is_integer():
        raise ClipError(f"{what} must be an integer, found {scalar!r}")
    return int(scalar)
