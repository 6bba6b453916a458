"""Sizes an .npz archive declares, checked before numpy reads a member: `np.load` allocates each array from the
shape in its .npy header before reading its data, so a 1 KB zip of zeros can ask for gigabytes."""

from __future__ import annotations

import numpy as np

from etl.pose.limits import LimitError


def check_npz_sizes(archive: np.lib.npyio.NpzFile, check_array_size, max_bytes: int) -> dict[str, tuple]:
    """Raise LimitError (or ClipError-like ValueError) before loading when a member is too large.

    check_array_size(shape, dtype, what): the reader's limit check; max_bytes: the uncompressed size bound.
    Returns the shape each .npy member declares, by array name ('keypoints')."""
    shapes: dict[str, tuple] = {}
    zf = archive.zip
    for info in zf.infolist():
        what = f"member {info.filename}"
        if info.file_size > max_bytes:
            raise LimitError(
                f"{what} unpacks to {info.file_size} bytes, more than max_clip_bytes={max_bytes} "
                "(raise it with --max-clip-bytes)"
            )
        if not info.filename.endswith(".npy"):
            continue
        with zf.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            else:  # 3.0 (utf-8 field names) has no public reader; numpy's own load handles it the same way
                shape, _, dtype = np.lib.format._read_array_header(fp, version)
        check_array_size(shape, dtype, what)
        shapes[info.filename.removesuffix(".npy")] = tuple(shape)
    return shapes
