"""`actrec-etl ingest`: pose files -> keypoint store + clip table, every input clip kept or rejected with a reason.

The store is built in `<out>.partial` and renamed into place at the end, so an interrupted ingest never leaves
something that looks complete.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from etl.common.errors import ActrecError
from etl.common.locks import exclusive_lock
from etl.pose.clip import PoseClip, Reject
from etl.pose.clip_checks import DEFAULT_NAN_POLICY, validate_clip
from etl.pose.labels import FIXED, LabelBook
from etl.pose.layout_file import NAMING_FORMATS
from etl.pose.layout_map import layout_mapping, remap_clip
from etl.pose.skeleton import Layout
from etl.readers import ReadOptions, dataset_classes, detect_source, read_source
from etl.readers.common import existing_inputs
from etl.readers.manifest import load_classes
from etl.stores.cliptable import (
    CORE_COLUMNS,
    REJECT_COLUMNS,
    order_columns,
    read_clip_table,
    read_rejects,
)
from etl.stores.keypoint_store import HAS_3D, KeypointStore, KeypointWriter, finalise_store
from etl.stores.storeio import check_output, disk_errors, partial_path, publish, recover_publish

MODES = ("create", "overwrite", "append")


@dataclass
class IngestReport:
    out: Path
    fmt: str
    n_read: int = 0
    n_kept: int = 0  # clips added by this run
    n_total: int = 0  # clips in the store afterwards (differs from n_kept when appending)
    rejects: list[Reject] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    # files in the input folders that `--format auto` found to be no pose file (READMEs, images)
    ignored: list[Path] = field(default_factory=list)

    @property
    def n_rejected(self) -> int:
        return len(self.rejects)

    def summary(self) -> str:
        return f"{self.n_read} read, {self.n_kept} kept, {self.n_rejected} rejected"


def ingest(
    paths: list[Path],
    *,
    out: Path,
    fmt: str,
    options: ReadOptions,
    mode: str = "create",
    nan_policy: str = DEFAULT_NAN_POLICY,
    strict: bool = False,
    to_layout: Layout | None = None,
    on_progress: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Read, validate and store clips; raise ActrecError when the input as a whole is unusable (or, with
    `strict`, when any clip is rejected). Nothing is written then.

    to_layout: store the clips in this layout, each joint taken from the input joint (`options.layout`) of the
    same name; ActrecError listing the joints the input lacks when that is impossible."""
    if mode not in MODES:
        raise ActrecError(f"unknown ingest mode {mode!r}; choose one of {', '.join(MODES)}")
    mapping = None if to_layout is None else layout_mapping(options.layout, to_layout)
    existing_inputs(paths, all_required=True)
    ignored: tuple[Path, ...] = ()
    if fmt == "auto":
        detection = detect_source(paths)
        fmt, ignored = detection.fmt, detection.ignored
    out = Path(out)
    _check_not_inside(out, paths)
    with exclusive_lock(out, "ingest"):
        recover_publish(out)
        if mode == "append":
            if not out.exists():
                raise ActrecError(f"--append needs an existing store, but {out} does not exist")
        else:
            check_output(out, overwrite=mode == "overwrite", hint=" or --append to add new clips")
        tmp = partial_path(out)
        if tmp.exists():
            shutil.rmtree(tmp)  # a leftover of an interrupted ingest: ingest restarts from scratch
        try:
            with disk_errors(
                tmp, f"ingest stopped and removed {tmp}; {out} is unchanged. Free space and re-run"
            ):
                report = _ingest_into(
                    tmp,
                    paths,
                    out=out,
                    fmt=fmt,
                    options=options,
                    mode=mode,
                    nan_policy=nan_policy,
                    strict=strict,
                    to_layout=to_layout,
                    mapping=mapping,
                    on_progress=on_progress,
                )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        publish(tmp, out)
    report.ignored = list(ignored)
    return report


def _check_not_inside(out: Path, paths) -> None:
    """A store written inside a source folder would be read back as input on the next run."""
    target = out.resolve()
    for p in paths:
        src = Path(p).resolve()
        if src.is_dir() and (target == src or src in target.parents):
            raise ActrecError(f"the output {out} is inside the input folder {p}: write the store elsewhere")


def _ingest_into(
    tmp: Path, paths, *, out, fmt, options, mode, nan_policy, strict, to_layout, mapping, on_progress
) -> IngestReport:
    report = IngestReport(out=out, fmt=fmt)
    layout = options.layout if to_layout is None else to_layout  # the layout stored
    old_table, old_rejects, old_attrs = None, None, {}
    if mode == "append":
        old = KeypointStore.open(out)
        if old.layout.name != layout.name or old.layout.joints != layout.joints:
            raise ActrecError(f"cannot append {layout.name} clips to {out}, which holds {old.layout.name}")
        old_table, old_rejects, old_attrs = read_clip_table(out), read_rejects(out), old.attrs
        shutil.copytree(out, tmp)
    labels = LabelBook(
        _fixed_classes(fmt, options, old_attrs), old_attrs.get("classes"), old_attrs.get("label_mode")
    )
    writer = KeypointWriter(tmp, layout, append=mode == "append")
    seen: dict[str, str] = {} if old_table is None else dict.fromkeys(old_table.clip_id, str(out))
    rows: list[dict] = []
    flags_3d: list[bool] = []  # per kept clip: has it 3D joints

    for item in read_source(paths, fmt, options):
        report.n_read += 1
        if isinstance(item, PoseClip) and mapping is not None:
            item = _mapped(item, options.layout, mapping, nan_policy)
        result = item if isinstance(item, Reject) else _check(item, layout, nan_policy, seen, labels)
        if isinstance(result, Reject):
            report.rejects.append(result)
        else:
            seen[result.clip_id] = result.source
            writer.add(result)
            rows.append(_row(result, layout.name))
            flags_3d.append(result.has_3d)
            report.n_kept += 1
        if on_progress is not None:
            on_progress(report)

    if report.n_kept == 0 and mode != "append":
        raise ActrecError(
            f"no usable clips in {', '.join(map(str, paths))} (format {fmt}: {report.summary()}); "
            f"first reasons: {_first_reasons(report.rejects)}"
        )
    if strict and report.rejects:
        raise ActrecError(
            f"--strict: {report.n_rejected} clip(s) rejected ({report.summary()}); "
            f"first reasons: {_first_reasons(report.rejects)}"
        )

    table = pd.DataFrame(rows)
    if old_table is not None:
        table = pd.concat([old_table, table], ignore_index=True) if rows else old_table
    report.classes = labels.classes(table["label_name"])
    index = {name: i for i, name in enumerate(report.classes)}
    table["label"] = table["label_name"].map(index).astype("int64")
    table = _with_has_3d(table, old_table, flags_3d)
    table = _meta_column_types(table)
    table = order_columns(table)
    rejects = pd.DataFrame([r.__dict__ for r in report.rejects], columns=list(REJECT_COLUMNS))
    if old_rejects is not None and len(old_rejects):
        rejects = pd.concat([old_rejects, rejects], ignore_index=True)
    content_hash = writer.close()
    report.n_total = len(table)
    finalise_store(
        tmp,
        layout,
        table,
        rejects,
        classes=report.classes,
        label_mode=labels.mode,
        content_hash=content_hash,
        ingest={
            **_ingest_params(paths, fmt, options, nan_policy, old_attrs.get("ingest")),
            **({} if to_layout is None else {"mapped_from_layout": options.layout.name}),
            **({} if options.coords == "color" else {"coords": options.coords}),
            **({} if options.image_size is None else {"image_size": list(options.image_size)}),
        },
    )
    return report


def _with_has_3d(table: pd.DataFrame, old_table: pd.DataFrame | None, flags_3d: list[bool]) -> pd.DataFrame:
    """The table with the bool column `has_3d` when some clip (old or new) has 3D joints; without it otherwise,
    so a 2D-only store's clip table (and every hash downstream of it) is what it was before 3D existed."""
    table = table.drop(columns=[HAS_3D], errors="ignore")  # a dataset column of that name is not ours
    old = [] if old_table is None else old_table.get(HAS_3D, pd.Series(False, index=old_table.index)).tolist()
    flags = [bool(f) for f in old] + flags_3d
    if any(flags):
        table[HAS_3D] = np.asarray(flags, bool)
    return table


def _mapped(clip: PoseClip, source: Layout, mapping: list[int], nan_policy: str) -> PoseClip | Reject:
    """The clip checked against its input layout, then with its joints taken by name into the target layout."""
    checked = validate_clip(clip, source, nan_policy=nan_policy, require_label=False)
    return checked if isinstance(checked, Reject) else remap_clip(checked, mapping)


def _check(
    clip: PoseClip, layout, nan_policy: str, seen: dict[str, str], labels: LabelBook
) -> PoseClip | Reject:
    result = validate_clip(clip, layout, nan_policy=nan_policy)
    if isinstance(result, Reject):
        return _own_joints_hint(result, clip.source_format)
    if result.clip_id in seen:
        return Reject(
            result.clip_id,
            result.source,
            f"duplicate clip_id {result.clip_id!r} (first seen in {seen[result.clip_id]})",
        )
    problem = labels.resolve(result)
    return Reject(result.clip_id, result.source, problem) if problem else result


def _own_joints_hint(reject: Reject, fmt: str) -> Reject:
    """A joint count that fits no layout, from a format that names its joints (a mouse's 4 body parts under
    coco17): say that the file's own joints can be the layout."""
    if fmt in NAMING_FORMATS and "joints per person, but layout" in reject.reason:
        hint = (
            "; to take the file's own joints and skeleton as the layout: --layout from-file (docs/formats.md)"
        )
        return Reject(reject.clip_id, reject.source, reject.reason + hint)
    return reject


def _fixed_classes(fmt: str, options: ReadOptions, old_attrs: dict) -> list[str] | None:
    """The class list when it is known before reading (a dataset's own, a --classes file, or that of the store
    appended to when it was fixed); None means: take the names from the data (appending keeps the old order
    and adds new names at the end)."""
    if old_attrs.get("label_mode") == FIXED:
        return list(old_attrs["classes"])
    if options.classes_file is not None:
        return load_classes(Path(options.classes_file))
    return dataset_classes(fmt)


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _meta_column_types(table: pd.DataFrame) -> pd.DataFrame:
    """One type per dataset column (parquet needs it), numbers where the values are numbers: a column whose
    every non-empty value is an integer (or integer text, as a manifest gives it: camera "3") becomes integers
    (nullable Int64 when some are empty), else one whose every value is a number becomes float64, so that
    `camera == 3` and `speed > 1.0` select clips; any other mix (e.g. fps 30.0 from files, "30fps") is text."""
    for col in table.columns:
        dtype = table[col].dtype
        if col in CORE_COLUMNS or not (
            pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
        ):
            continue
        values = [v for v in table[col] if v is not None and v == v]
        if values and all(_is_int(v) for v in values):
            ints = [None if v is None or v != v else int(v) for v in table[col]]
            table[col] = pd.array(ints, dtype="Int64" if len(values) < len(table) else "int64")
        elif values and all(_is_int(v) or _is_float(v) for v in values):
            table[col] = [float("nan") if v is None or v != v else float(v) for v in table[col]]
        elif len({type(v) for v in values}) > 1:
            table[col] = [None if v is None or v != v else str(v) for v in table[col]]
    return table


def _is_int(value) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | np.integer):
        return True
    return isinstance(value, str) and _INT.fullmatch(value.strip()) is not None


def _is_float(value) -> bool:
    """A finite float or float text ('nan' and 'inf' stay text: they name nothing a user compares)."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, float | np.floating):
        return bool(np.isfinite(value))
    return isinstance(value, str) and _FLOAT.fullmatch(value.strip()) is not None


def _row(clip: PoseClip, layout_name: str) -> dict:
    row = {
        "clip_id": clip.clip_id,
        "label": clip.label,
        "label_name": clip.label_name,
        "split": clip.split,
        "n_frames": clip.n_frames,
        "n_persons": clip.n_persons,
        "img_h": int(clip.img_h),
        "img_w": int(clip.img_w),
        "layout": layout_name,
        "source": clip.source,
        "source_format": clip.source_format,
    }
    for key, value in clip.meta.items():
        row.setdefault(key, value)
    return row


def _first_reasons(rejects: Iterable[Reject], n: int = 3) -> str:
    items = [f"{r.clip_id}: {r.reason}" for r in list(rejects)[:n]]
    return "; ".join(items) or "none"


def _ingest_params(paths, fmt: str, options: ReadOptions, nan_policy: str, previous: dict | None) -> dict:
    params = {
        "sources": [str(p) for p in paths],
        "format": fmt,
        "nan_policy": nan_policy,
        "labels_csv": str(options.labels_csv) if options.labels_csv else None,
        "classes_file": str(options.classes_file) if options.classes_file else None,
        "project": options.project,
        "occluded_score": options.occluded_score,
        "split_protocol": options.split_protocol,
    }
    if previous:
        params["appended_to"] = previous
    return params
