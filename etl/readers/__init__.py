"""Pose-file readers for `actrec-etl ingest`: every supported format in, a stream of PoseClip or Reject out.

`read_source` is the one entry point. Each format is a module declaring a `SPEC` (etl.readers.registry: its name,
reader, sniff for `--format auto`, the format options it takes, a dataset's classes), listed in
etl.readers.formats. Readers stream clip by clip and never raise for one bad file or clip: it becomes a `Reject`
whose reason says what is wrong and where. Only an unusable call (no path exists, unknown format, bad options,
unreadable manifest) raises ActrecError. Readers do not check joint counts against the layout (except
openpose-json, yolo-pose txt and CTR-GCN arrays, which parse by it): `etl.pose.clip_checks.validate_clip` does. Files that
name their joints are read in the layout's order by name (`etl.readers.joint_order`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject
from etl.readers.common import existing_inputs, fallback_clip_id
from etl.readers.detect import Detection, detect_format, detect_source
from etl.readers.formats import FORMAT_ORDER, SPECS
from etl.readers.manifest import load_classes, load_manifest
from etl.readers.options import ReadContext, ReadOptions
from etl.readers.registry import FormatSpec, Reader

__all__ = [
    "FORMATS",
    "Detection",
    "ReadOptions",
    "dataset_classes",
    "detect_format",
    "detect_source",
    "format_spec",
    "read_source",
]

FORMATS: tuple[str, ...] = FORMAT_ORDER


def format_spec(fmt: str) -> FormatSpec:
    """The registered spec of format `fmt`; ActrecError naming the formats for an unknown one."""
    spec = SPECS.get(fmt)
    if spec is None:
        raise ActrecError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)} (or auto)")
    return spec


def dataset_classes(fmt: str) -> list[str] | None:
    """The canonical class order of a dataset format (label n = classes[n]); None for generic formats."""
    classes = format_spec(fmt).classes
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
    spec = format_spec(fmt)
    options.check_format_options()
    ctx = ReadContext(
        options=options,
        manifest=load_manifest(Path(options.labels_csv)) if options.labels_csv is not None else None,
        classes=load_classes(Path(options.classes_file)) if options.classes_file is not None else None,
        format_options=spec.option_values(options.format_options),
    )
    missing = [p for p in paths if not p.exists()]
    return _stream(spec.read, existing, missing, fmt, ctx)


def _stream(
    reader: Reader, existing: list[Path], missing: list[Path], fmt: str, ctx: ReadContext
) -> Iterator[PoseClip | Reject]:
    for path in missing:
        yield Reject(fallback_clip_id(path.stem), str(path), f"{path}: no such file or folder")
    n_items = 0
    for item in reader(existing, ctx):
        n_items += 1
        yield ctx.labelled(item)  # the --labels manifest, applied here once for every format
    if n_items == 0:
        raise ActrecError(f"no {fmt} input found in {', '.join(map(str, existing))}; see docs/formats.md")
