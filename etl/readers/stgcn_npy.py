"""ST-GCN / CTR-GCN preprocessed arrays: many clips per file, read one clip at a time (never loaded whole).

* ST-GCN / 2s-AGCN / MS-G3D: `<part>_data_joint.npy` (or `<part>_data.npy`) (N, C, T, V, M) beside
  `<part>_label.pkl` = (sample names, labels), the pickle read with the restricted unpickler. The .npy is
  memory-mapped.
* CTR-GCN: `NTU60_CS.npz` etc. with `x_train` (N, T, M*V*3), one-hot `y_train` (N, classes), `x_test`, `y_test`;
  each row is streamed out of the archive.

Channels: C = 2 (x, y), or C = 3 read as (x, y, score) when the third channel lies in [0, 1] (Kinetics), or as
3D (x, y, z) with `coords="3d"` (NTU), projected like ntu-skeleton's `3d` (use `project="ortho"` for centred
arrays such as CTR-GCN's), and then kept as the clip's 3D keypoints too. x, y within [-0.5, 0.5] are ST-GCN's centred normalised coordinates: pixel =
(x + 0.5) * img_w on an `image_size` frame (default 256x340, the Kinetics-skeleton release). Zero padding
(frames after a clip's last non-zero frame, all-zero persons) is dropped; (0, 0) joints are missing.
"""

from __future__ import annotations

import dataclasses
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject
from etl.readers.common import (
    THREE_D_CLIP,
    ClipError,
    describe_error,
    expand_files,
    fallback_clip_id,
    file_reject,
    guarded,
    mark_missing,
)
from etl.readers.format_options import COORDS, IMAGE_SIZE, PROJECT
from etl.readers.generic import label_name_for
from etl.readers.ntu_classes import CLASSES as NTU_CLASSES
from etl.readers.ntu_classes import official_splits
from etl.readers.ntu_skeleton import _NAME as NTU_NAME
from etl.readers.ntu_skeleton import project_3d
from etl.readers.options import ReadContext
from etl.readers.registry import FormatSpec
from etl.readers.safe_pickle import load_pickle

FORMAT = "stgcn-npy"
PATTERNS = ("*.npy", "*.npz")
DEFAULT_SIZE = (256, 340)  # (img_h, img_w) of the Kinetics-skeleton release
_DATA_NAME = re.compile(r"(.*?)_?data(?:_joint)?$")
_PARTS = {"train": "train", "val": "test", "test": "test"}
_CTRGCN_PARTS = (("x_train", "y_train", "train"), ("x_test", "y_test", "test"))


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for path in expand_files(paths, PATTERNS):
        if path.suffix.lower() == ".npz":
            yield from _read_ctrgcn(path, ctx)
        elif _DATA_NAME.fullmatch(path.stem):
            yield from _read_stgcn(path, ctx)
        # other .npy files (e.g. *_bone.npy, *_motion.npy beside the joints) are not clips


def is_ctrgcn_npz(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return bool({"x_train.npy", "x_test.npy"} & names)


def _read_stgcn(path: Path, ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    part = _DATA_NAME.fullmatch(path.stem).group(1)
    label_path = path.with_name(f"{part}_label.pkl" if part else "label.pkl")
    if not label_path.is_file():
        yield file_reject(path, f"no label file {label_path.name} beside it (ST-GCN writes <part>_label.pkl)")
        return
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)  # (N, C, T, V, M), memory-mapped
        names, labels = _labels(load_pickle(label_path))
    except ActrecError as exc:
        yield file_reject(path, str(exc))
        return
    except (OSError, ValueError) as exc:
        yield file_reject(path, f"not a readable .npy file (corrupt or truncated?): {describe_error(exc)}")
        return
    if data.ndim != 5:
        yield file_reject(path, f"data must be (N, C, T, V, M), found shape {data.shape}")
        return
    if len(names) != data.shape[0]:
        yield file_reject(
            path, f"{label_path.name} names {len(names)} samples but the data holds {data.shape[0]}"
        )
        return
    split = _PARTS.get(part.lower())
    for i, (name, label) in enumerate(zip(names, labels, strict=True)):
        raw_id = re.sub(r"\.(skeleton|json)$", "", str(name))
        clip_id = fallback_clip_id(raw_id, f"{part or 'clip'}_{i:06d}")
        source = f"{path}#{i}"

        def build(i: int = i, raw_id: str = raw_id, clip_id: str = clip_id, label=label, source=source):
            sample = np.asarray(data[i], dtype=np.float32)  # (C, T, V, M): this clip only
            return _clip(sample, clip_id, raw_id, label, split, source, ctx)

        yield guarded(build, clip_id, source)


def _labels(loaded) -> tuple[list, list]:
    if not (isinstance(loaded, tuple | list) and len(loaded) == 2):
        raise ActrecError("the label pickle must hold (sample names, labels)")
    names, labels = list(loaded[0]), list(loaded[1])
    if len(names) != len(labels):
        raise ActrecError(f"the label pickle has {len(names)} names but {len(labels)} labels")
    return names, labels


def _read_ctrgcn(path: Path, ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        yield file_reject(path, f"not a readable .npz file (corrupt or truncated?): {describe_error(exc)}")
        return
    with archive:
        members = set(archive.namelist())
        for x_key, y_key, split in _CTRGCN_PARTS:
            if f"{x_key}.npy" not in members:
                continue
            try:
                with archive.open(f"{y_key}.npy") as f:
                    y = np.lib.format.read_array(f, allow_pickle=False)  # (N, classes) one-hot, or (N,)
                stream, shape, dtype = _open_rows(archive, f"{x_key}.npy")
            except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
                yield file_reject(path, f"cannot read {x_key}/{y_key}: {describe_error(exc)}")
                continue
            labels = y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)
            if len(shape) != 3 or shape[0] != len(labels) or shape[2] % 3:
                yield file_reject(
                    path,
                    f"{x_key} must be (N, T, M*V*3) with N = len({y_key}) = {len(labels)}, found {shape}",
                )
                continue
            n_joints = ctx.options.layout.n_joints
            if shape[2] % (3 * n_joints):
                yield file_reject(
                    path, f"{x_key} rows of {shape[2]} values are not M x {n_joints} joints x 3"
                )
                continue
            n_persons = shape[2] // (3 * n_joints)
            # CTR-GCN's arrays are always 3D joints (x, y, z), centred on the first frame's spine
            ctx_3d = dataclasses.replace(ctx, format_options={**ctx.format_options, "coords": "3d"})
            row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
            with stream:
                for i, label in enumerate(labels):
                    clip_id = f"{fallback_clip_id(path.stem)}_{split}_{i:06d}"
                    source = f"{path}#{x_key}[{i}]"
                    raw = stream.read(row_bytes)
                    if len(raw) != row_bytes:
                        yield file_reject(path, f"{x_key} ends at row {i} of {shape[0]} (truncated?)")
                        break
                    row = np.frombuffer(raw, dtype=dtype).reshape(
                        shape[1], n_persons, n_joints, 3
                    )  # (T, M, V, 3)
                    sample = row.astype(np.float32).transpose(3, 0, 2, 1)  # (C, T, V, M)

                    def build(sample=sample, clip_id=clip_id, label=int(label), source=source, split=split,
                              ctx_3d=ctx_3d):  # fmt: skip
                        return _clip(sample, clip_id, clip_id, label, split, source, ctx_3d)

                    yield guarded(build, clip_id, source)


def _open_rows(archive: zipfile.ZipFile, member: str):
    """(open stream positioned at the first row, shape, dtype) of a C-order .npy inside a zip archive."""
    stream = archive.open(member)
    version = np.lib.format.read_magic(stream)
    read_header = (
        np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = read_header(stream)
    if fortran or dtype.hasobject:
        stream.close()
        raise ValueError(f"{member} must be a C-order numeric array")
    return stream, shape, dtype


def _clip(
    sample: np.ndarray, clip_id: str, raw_id: str, label, split, source: str, ctx: ReadContext
) -> PoseClip:
    """sample (C, T, V, M) -> PoseClip, padding removed."""
    n_channels = sample.shape[0]
    if n_channels not in (2, 3):
        raise ClipError(f"data must have 2 or 3 channels (x, y[, score or z]), found {n_channels}")
    values = sample.transpose(3, 1, 2, 0)  # (M, T, V, C)
    nonzero = (values != 0).any(axis=-1)  # (M, T, V)
    frames = np.flatnonzero(nonzero.any(axis=(0, 2)))
    persons = np.flatnonzero(nonzero.any(axis=(1, 2)))
    if len(frames) == 0:
        raise ClipError("every value is 0 (an empty, padded sample)")
    ctx.options.check_clip_size(len(persons), int(frames[-1]) + 1, values.shape[2])  # before the copies
    values = values[persons, : frames[-1] + 1]  # trailing padding and absent persons dropped
    zero = ~(values != 0).any(axis=-1)  # (M, T', V)
    keypoints3d = None
    if ctx.option("coords") == "3d":
        if n_channels != 3:
            raise ClipError("coords 3d needs 3 channels (x, y, z)")
        ctx.options.check_array_size((*values.shape[:3], 6), np.float32, THREE_D_CLIP)
        keypoints, (img_h, img_w) = project_3d(values.astype(np.float64), ctx.option("project"))
        scores = np.ones(keypoints.shape[:3], np.float32)
        keypoints3d = values.astype(np.float32)  # (M, T', V, 3) camera space, as the arrays give it
    else:
        if n_channels == 3 and not (values[..., 2].min() >= 0 and values[..., 2].max() <= 1):
            raise ClipError(
                "the third channel is not a score in [0, 1]: 3D joints (x, y, z)? pass --coords 3d"
            )
        scores = (
            values[..., 2].astype(np.float32) if n_channels == 3 else np.ones(values.shape[:3], np.float32)
        )
        keypoints = values[..., :2].astype(np.float64)
        img_h, img_w = ctx.option("image_size") or DEFAULT_SIZE
        if np.abs(keypoints).max() <= 0.5 + 1e-6:  # ST-GCN's centred, normalised coordinates
            keypoints = (keypoints + 0.5) * np.array([img_w, img_h])
    keypoints = keypoints.astype(np.float32)
    scores = np.ascontiguousarray(scores)
    missing = zero | ~(scores > 0) | ~np.isfinite(keypoints).all(axis=-1)  # (M, T', V)
    mark_missing(keypoints, scores, missing)
    if keypoints3d is not None:
        keypoints3d[missing] = np.nan
    label = int(label)
    meta: dict = {}
    label_name = label_name_for(label, ctx.classes)
    ntu = NTU_NAME.fullmatch(raw_id)
    if ntu is not None:  # NTU sample names carry the setup, camera, subject, replication and action
        setup, camera, subject, replication, action = (int(g) for g in ntu.groups())
        meta = {"setup": setup, "camera": camera, "subject": subject, "replication": replication}
        meta.update({f"split_{k}": v for k, v in official_splits(setup, camera, subject).items()})
        if ctx.classes is None and action == label + 1:
            label_name = NTU_CLASSES[label]
    return PoseClip(
        clip_id=clip_id,
        keypoints=np.ascontiguousarray(keypoints),
        scores=scores,
        label_name=label_name,
        split=split,
        img_h=int(img_h),
        img_w=int(img_w),
        source=source,
        source_format=FORMAT,
        label=label,
        meta=meta,
        keypoints3d=keypoints3d,
    )


def sniff(path: Path) -> bool:
    """ST-GCN arrays (.npy) and their label pickles beside them, or a CTR-GCN .npz."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return True
    if suffix == ".npz":
        return is_ctrgcn_npz(path)
    label = re.fullmatch(r"(.*?)_?label", path.stem)
    return suffix == ".pkl" and label is not None and any(path.parent.glob(f"{label.group(1)}*data*.npy"))


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff, options=(COORDS, PROJECT, IMAGE_SIZE))
