"""Pose-file readers for `actrec-etl ingest`: every supported format in, a stream of PoseClip or Reject out.

`read_source` is the one entry point. Readers stream clip by clip and never raise for one bad file or clip: it
becomes a `Reject` whose reason says what is wrong and where. Only an unusable call (no path exists, unknown
format, bad options, unreadable manifest) raises ActrecError. Readers do not check joint counts against the
layout (except openpose-json, yolo-pose txt and CTR-GCN arrays, which parse by it): `etl.validate.validate_clip`
does. Files that name their joints are read in the layout's order by name (`etl.readers.joint_order`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from etl.errors import ActrecError
from etl.poseclip import PoseClip, Reject
from etl.readers import (
    coco_json,
    dlc,
    h5,
    jhmdb_ddnet,
    kinetics_skeleton,
    mediapipe,
    mmpose_json,
    npz,
    ntu_skeleton,
    openpose_json,
    penn_action,
    pyskl,
    stgcn_npy,
    utd_mhad,
    yolo_pose,
)
from etl.readers.common import existing_inputs, fallback_clip_id
from etl.readers.detect import detect_format
from etl.readers.manifest import load_classes, load_manifest
from etl.readers.options import ReadContext, ReadOptions

__all__ = ["FORMATS", "ReadOptions", "dataset_classes", "detect_format", "read_source"]

_Reader = Callable[[list[Path], ReadContext], Iterator[PoseClip | Reject]]
_READERS: dict[str, _Reader] = {
    "pyskl": pyskl.read,
    "coco-json": coco_json.read,
    "openpose-json": openpose_json.read,
    "h5": h5.read,
    "npz": npz.read,
    "penn-action": penn_action.read,
    "jhmdb-ddnet": jhmdb_ddnet.read,
    "utd-mhad": utd_mhad.read,
    "ntu-skeleton": ntu_skeleton.read,
    "stgcn-npy": stgcn_npy.read,
    "kinetics-skeleton": kinetics_skeleton.read,
    "mmpose-json": mmpose_json.read,
    "yolo-pose": yolo_pose.read,
    "mediapipe": mediapipe.read,
    "dlc": dlc.read,
}
FORMATS: tuple[str, ...] = tuple(_READERS)

_DATASET_CLASSES: dict[str, tuple[str, ...]] = {
    "penn-action": penn_action.CLASSES,
    "utd-mhad": utd_mhad.CLASSES,
    "jhmdb-ddnet": jhmdb_ddnet.CLASSES,
}


def dataset_classes(fmt: str) -> list[str] | None:
    """The canonical class order of a dataset format (label n = classes[n]); None for generic formats."""
    _check_format(fmt)
    classes = _DATASET_CLASSES.get(fmt)
    return list(classes) if classes is not None else None


def read_source(paths: list[Path], fmt: str, options: ReadOptions) -> Iterator[PoseClip | Reject]:
    """Stream the clips of `paths` (files or folders) in format `fmt` ("auto" detects it).

    Arguments, options and side files are checked now, before the first clip is read; a path that does not exist
    becomes a Reject when some other path does exist. The `labels_csv` manifest is applied to every clip here,
    whatever the format (readers never apply it themselves).
    """
    paths = [Path(p) for p in paths]
    existing = existing_inputs(paths)
    if fmt == "auto":
        fmt = detect_format(existing)
    _check_format(fmt)
    _check_options(fmt, options)
    ctx = ReadContext(
        options=options,
        manifest=load_manifest(Path(options.labels_csv)) if options.labels_csv is not None else None,
        classes=load_classes(Path(options.classes_file)) if options.classes_file is not None else None,
    )
    missing = [p for p in paths if not p.exists()]
    return _stream(_READERS[fmt], existing, missing, fmt, ctx)


def _stream(
    reader: _Reader, existing: list[Path], missing: list[Path], fmt: str, ctx: ReadContext
) -> Iterator[PoseClip | Reject]:
    for path in missing:
        yield Reject(fallback_clip_id(path.stem), str(path), f"{path}: no such file or folder")
    n_items = 0
    for item in reader(existing, ctx):
        n_items += 1
        yield ctx.labelled(item)  # the --labels manifest, applied here once for every format
    if n_items == 0:
        raise ActrecError(f"no {fmt} input found in {', '.join(map(str, existing))}; see docs/formats.md")


def _check_format(fmt: str) -> None:
    if fmt not in _READERS:
        raise ActrecError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)} (or auto)")


def _check_options(fmt: str, options: ReadOptions) -> None:
    if options.project not in utd_mhad.PROJECTIONS:
        raise ActrecError(
            f"unknown projection {options.project!r}; choose one of {', '.join(utd_mhad.PROJECTIONS)}"
        )
    if not 0.0 <= options.occluded_score <= 1.0:
        raise ActrecError(f"occluded_score must be in [0, 1], found {options.occluded_score}")
    if fmt == "jhmdb-ddnet":
        jhmdb_ddnet.chosen_split(options.split_protocol)
    if options.image_size is not None and not (
        len(options.image_size) == 2 and all(isinstance(v, int) and v > 0 for v in options.image_size)
    ):
        raise ActrecError(
            f"image size must be two positive integers (height, width), found {options.image_size}"
        )
    if fmt == "ntu-skeleton":
        ntu_skeleton.check_options(options.coords, options.split_protocol)
