"""NumPy .npz pose files, one clip per file, with the keys of the generic h5 layout.

`keypoints` (T, M, V, 2|3), optional `scores` (T, M, V), optional `keypoints3d` (T, M, V, 3) camera-space 3D
joints (kept beside the 2D ones; the third channel of `keypoints` is a score, never z), and 0-d arrays `label_name`, `label`, `split`, `img_h`,
`img_w`, `fps` (any other 0-d array goes to meta). Loaded with allow_pickle=False: object arrays are refused.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from etl.pose.clip import PoseClip, Reject
from etl.readers.common import (
    ClipError,
    describe_error,
    expand_files,
    fallback_clip_id,
    file_reject,
    guarded,
    with_3d,
)
from etl.readers.generic import check_declared_size, clip_from_arrays
from etl.readers.npz_checks import check_npz_sizes
from etl.readers.options import ReadContext
from etl.readers.registry import FormatSpec

FORMAT = "npz"
PATTERNS = ("*.npz",)


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for path in expand_files(paths, PATTERNS):
        yield _read_file(path, ctx)


def _read_file(path: Path, ctx: ReadContext) -> PoseClip | Reject:
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        return file_reject(path, f"not a readable .npz file (corrupt or truncated?): {describe_error(exc)}")
    if not isinstance(archive, np.lib.npyio.NpzFile):
        return file_reject(
            path, "wrong structure: a single .npy array, expected an .npz archive with 'keypoints'"
        )
    with archive:
        clip_id = fallback_clip_id(path.stem)
        return guarded(lambda: _clip(path, archive, ctx), clip_id, str(path))


def _clip(path: Path, archive: np.lib.npyio.NpzFile, ctx: ReadContext) -> PoseClip:
    keys = set(archive.files)
    if "keypoints" not in keys:
        raise ClipError(
            f"wrong structure: no 'keypoints' array; found {', '.join(sorted(keys)) or 'nothing'}"
        )
    options = ctx.options
    # declared sizes, before numpy allocates: each member's, then the clip's persons, frames and bytes
    shapes = check_npz_sizes(archive, options.check_array_size, options.max_clip_bytes)
    check_declared_size(shapes.get("keypoints", ()), options)
    try:
        arrays = {key: archive[key] for key in sorted(keys)}
    except ValueError as exc:  # object arrays need pickle, which is refused on purpose
        raise ClipError(f"cannot load an array without pickle: {exc}") from None
    attrs = {
        key: value
        for key, value in arrays.items()
        if key not in ("keypoints", "scores", "keypoints3d") and value.ndim == 0
    }
    clip = clip_from_arrays(
        clip_id=fallback_clip_id(path.stem),
        source=str(path),
        source_format=FORMAT,
        keypoints=arrays["keypoints"],
        scores=arrays.get("scores"),
        attrs=attrs,
        classes=ctx.classes,
    )
    return with_3d(clip, arrays.get("keypoints3d"))  # its size was checked with the other members


def sniff(path: Path) -> bool:
    return path.suffix.lower() == ".npz"  # any .npz: CTR-GCN's are told first


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff)
