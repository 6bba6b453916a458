"""HDF5 pose files: the generic actrec layout (one clip per file, or many under /clips/<clip_id>) and SLEAP
analysis files (`tracks`, `point_scores`, `node_names`, `track_names`).

A generic clip may hold `keypoints3d` (T, M, V, 3) camera-space 3D joints beside `keypoints`: they are kept as
the clip's 3D keypoints (the third channel of `keypoints` is a score, never z).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from etl.pose.clip import PoseClip, Reject, safe_clip_id
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
    with_3d,
)
from etl.readers.generic import check_declared_size, clip_from_arrays
from etl.readers.h5_checks import foreign_data
from etl.readers.options import ReadContext, ReadOptions
from etl.readers.registry import FormatSpec
from etl.readers.sleap_axes import sleap_arrays, sleap_node_order, stored_dims

FORMAT = "h5"
PATTERNS = ("*.h5", "*.hdf5")
# SLEAP names its exports <project>.<video>.analysis.h5 (GUI) or <labels>.tracking.h5 (command line)
_SLEAP_SUFFIXES = (".analysis", ".tracking")


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for path in expand_files(paths, PATTERNS):
        yield from _read_file(path, ctx)


def _read_file(path: Path, ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    try:
        f = h5py.File(path, "r")
    except Exception as exc:
        yield file_reject(path, f"not a readable HDF5 file (corrupt or truncated?): {describe_error(exc)}")
        return
    with f:
        try:
            foreign = foreign_data(f)
            kind, names = _layout_of(f)
        except Exception as exc:  # damaged metadata can fail on the first lookup
            yield file_reject(path, f"cannot read the HDF5 structure (corrupt?): {describe_error(exc)}")
            return
        if foreign is not None:
            yield file_reject(path, foreign)
            return
        if kind == "sleap":
            yield guarded(lambda: _sleap_clip(path, f, ctx), _sleap_id(path), str(path))
        elif kind == "many":
            root_attrs = dict(f.attrs)  # file-level attrs are defaults for every clip (e.g. fps)
            for name in names:
                source = f"{path}#{name}"

                def build(name: str = name, source: str = source) -> PoseClip:
                    return _group_clip(f["clips"][name], name, source, root_attrs, ctx)

                yield guarded(build, fallback_clip_id(name), source)
        elif kind == "one":
            clip_id = _stem_id(path)
            yield guarded(lambda: _group_clip(f, clip_id, str(path), {}, ctx), clip_id, str(path))
        else:
            yield file_reject(
                path,
                "wrong structure: expected a 'keypoints' dataset (one clip), a 'clips' group (many clips) or a "
                f"SLEAP analysis 'tracks' dataset; found {', '.join(names) or 'nothing'}",
            )


def _layout_of(f: h5py.File) -> tuple[str, list[str]]:
    """('sleap' | 'many' | 'one' | 'unknown', clip group names for 'many' / top-level keys for 'unknown')."""
    if "tracks" in f:
        return "sleap", []
    if isinstance(f.get("clips"), h5py.Group):
        return "many", sorted(f["clips"].keys(), key=natural_key)
    if "keypoints" in f:
        return "one", []
    return "unknown", sorted(f.keys())


def _stem_id(path: Path) -> str:
    return fallback_clip_id(path.stem)


def _sleap_id(path: Path) -> str:
    stem = path.stem
    for suffix in _SLEAP_SUFFIXES:
        stem = stem.removesuffix(suffix)
    return fallback_clip_id(stem)


def _dataset(group: h5py.Group, name: str, where: str, options: ReadOptions) -> np.ndarray:
    node = group.get(name)
    if not isinstance(node, h5py.Dataset):
        raise ClipError(f"{where}: '{name}' must be a dataset")
    options.check_array_size(node.shape or (), node.dtype, f"dataset {node.name}")  # before reading it
    return node[()]


def _group_clip(group: h5py.Group, raw_id: str, source: str, defaults: dict, ctx: ReadContext) -> PoseClip:
    if not isinstance(group, h5py.Group) or "keypoints" not in group:
        raise ClipError(f"no 'keypoints' dataset in {group.name}: each clip is a group holding one")
    declared = group["keypoints"]
    if isinstance(declared, h5py.Dataset):
        ctx.options.check_array_size(declared.shape or (), declared.dtype, f"dataset {declared.name}")
        check_declared_size(declared.shape, ctx.options)  # persons, frames, clip bytes: before reading it
    keypoints = _dataset(group, "keypoints", group.name, ctx.options)  # (T, M, V, 2|3)
    scores = _dataset(group, "scores", group.name, ctx.options) if "scores" in group else None  # (T, M, V)
    joints3d = _dataset(group, "keypoints3d", group.name, ctx.options) if "keypoints3d" in group else None
    clip = clip_from_arrays(
        clip_id=safe_clip_id(raw_id),
        source=source,
        source_format=FORMAT,
        keypoints=keypoints,
        scores=scores,
        attrs={**defaults, **dict(group.attrs)},
        classes=ctx.classes,
    )
    return with_3d(clip, joints3d)  # (T, M, V, 3) -> (M, T, V, 3)


def _sleap_clip(path: Path, f: h5py.File, ctx: ReadContext) -> PoseClip:
    for name in ("tracks", "point_scores"):  # declared sizes, before sleap_arrays reads them
        node = f.get(name)
        if isinstance(node, h5py.Dataset):
            ctx.options.check_array_size(node.shape or (), node.dtype, f"dataset {node.name}")
    tracks = f.get("tracks")
    if isinstance(tracks, h5py.Dataset) and tracks.ndim == 4:  # persons, frames, bytes: before reading it
        size = dict(zip(stored_dims(f)[0], tracks.shape, strict=True))
        ctx.options.check_clip_size(size["track"], size["frame"], size["node"])
    keypoints, scores = sleap_arrays(f)  # (M, T, V, 2), (M, T, V) or None: axis order as the file says
    order = sleap_node_order(f, keypoints.shape[2], ctx.options.layout)  # nodes named like layout joints
    if order is not None:
        keypoints = np.ascontiguousarray(keypoints[:, :, order])
        scores = None if scores is None else np.ascontiguousarray(scores[:, :, order])
    present = np.isfinite(keypoints).all(axis=-1)  # (M, T, V)
    if scores is not None:
        # user-labelled points carry no score: NaN where the point exists means "certain"
        scores[present & np.isnan(scores)] = 1.0
    else:
        scores = present.astype(np.float32)
    mark_missing(keypoints, scores, ~present)
    img_h, img_w = extent_size(keypoints)
    return PoseClip(
        clip_id=_sleap_id(path),
        keypoints=keypoints,
        scores=scores,
        label_name=None,  # SLEAP files carry no action label: give one with labels_csv
        split=None,
        img_h=img_h,
        img_w=img_w,
        source=str(path),
        source_format=FORMAT,
    )


def sniff(path: Path) -> bool:
    return path.suffix.lower() in (".h5", ".hdf5")  # any HDF5: DeepLabCut's are told first


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff)
