"""What one input clip may ask for, checked from the sizes a file declares BEFORE anything is allocated.

A 32-byte pickle can call `bytearray(10**12)`, an HDF5 file can declare a (10**9, 17, 2) dataset with no data, a
COCO JSON can give every detection its own track_id (frames x persons). Readers check the declared shape against
these limits first and reject the clip with the limit's name, so the user can raise it (`actrec-etl ingest
--max-persons/--max-frames/--max-clip-bytes`, `ReadOptions` fields of the same names) when a real clip is that
large. The defaults are far above any action-recognition clip (NTU: 2 persons x 300 frames = 120 KB).
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_MAX_PERSONS = 1000  # persons (tracks) per clip
DEFAULT_MAX_FRAMES = 1_000_000  # frames per clip (9 hours at 30 fps)
DEFAULT_MAX_CLIP_BYTES = 2**30  # bytes of one clip's arrays as read (1 GiB), and of any one array in a file
MAX_CLASSES = 100_000  # numeric labels are class indices 0..MAX_CLASSES-1 (Kinetics has 700)
MAX_IMAGE_SIDE = 2**31 - 1  # pixels: img_h/img_w are stored as int64, used as int32 by renderers
MAX_LABEL_CHARS = 200  # a class name is a word or a short phrase

# one joint of one person in one frame, as a clip holds it: (x, y) float32 + score float32
BYTES_PER_JOINT = 12


class LimitError(ValueError):
    """A declared size above a limit; the message names the limit and the option that raises it."""


def check_clip_size(
    n_persons: int, n_frames: int, n_joints: int, *, max_persons: int, max_frames: int, max_clip_bytes: int
) -> None:
    """Raise LimitError when a clip of (M persons, T frames, V joints) is larger than the limits allow."""
    if n_persons > max_persons:
        raise LimitError(
            f"{n_persons} persons (tracks) in one clip, more than max_persons={max_persons} "
            "(raise it with --max-persons if this is real)"
        )
    if n_frames > max_frames:
        raise LimitError(
            f"{n_frames} frames in one clip, more than max_frames={max_frames} (raise it with --max-frames)"
        )
    nbytes = int(n_persons) * int(n_frames) * int(n_joints) * BYTES_PER_JOINT
    if nbytes > max_clip_bytes:
        raise LimitError(
            f"a clip of {n_persons} persons x {n_frames} frames x {n_joints} joints needs {_size(nbytes)}, more "
            f"than max_clip_bytes={max_clip_bytes} (raise it with --max-clip-bytes)"
        )


def check_array_size(shape, dtype, what: str, *, max_clip_bytes: int) -> None:
    """Raise LimitError when an array of `shape` and `dtype` declared by a file is larger than max_clip_bytes.

    Computed with Python integers, so a shape like (10**30,) cannot overflow into a small number."""
    dims = [int(d) for d in (shape if isinstance(shape, tuple | list) else (shape,))]
    nbytes = math.prod(dims) * np.dtype(dtype).itemsize
    if nbytes > max_clip_bytes:
        raise LimitError(
            f"{what} declares {tuple(dims)} {np.dtype(dtype)} = {_size(nbytes)}, more than "
            f"max_clip_bytes={max_clip_bytes} (raise it with --max-clip-bytes)"
        )


def label_problem(label) -> str | None:
    """Why a numeric label cannot be a class index, or None."""
    if isinstance(label, bool) or not isinstance(label, int | np.integer):
        return f"label must be an integer class index, found {label!r}"
    if label < 0:
        return f"label {label} is negative: numeric labels are class indices 0, 1, 2, ..."
    if label >= MAX_CLASSES:
        return f"label {label} is too large: numeric labels are class indices below {MAX_CLASSES}"
    return None


def label_name_problem(name) -> str | None:
    """Why a class name cannot be kept (it becomes a clip-table value, a line of the classes list), or None."""
    if not isinstance(name, str):
        return f"label name must be text, found {type(name).__name__}"
    if not name.strip():
        return "empty label name"
    if len(name) > MAX_LABEL_CHARS:
        return f"label name of {len(name)} characters (at most {MAX_LABEL_CHARS}): {name[:40]!r}..."
    if any(not ch.isprintable() for ch in name):
        return f"label name {name!r} holds control characters (newlines, tabs, ...)"
    return None


def _size(nbytes: int) -> str:
    if nbytes >= 2**100:  # float division would overflow for sizes like 10**400
        return "more than 10^30 bytes"
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.3g} GiB"
    return f"{nbytes / 2**20:.3g} MiB"
