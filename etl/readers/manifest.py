"""Side files the user passes with a source: the labels manifest CSV and the classes file.

Both are read once, eagerly, when `read_source` is called: a broken manifest makes the whole call unusable, so
it raises ActrecError instead of rejecting every clip one by one.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, safe_clip_id

REQUIRED_COLUMNS = ("clip_id", "label_name")
KNOWN_COLUMNS = (*REQUIRED_COLUMNS, "split", "label", "img_h", "img_w")


@dataclass(frozen=True)
class ManifestRow:
    label_name: str | None
    label: int | None = None
    split: str | None = None
    img_h: int | None = None
    img_w: int | None = None
    meta: dict[str, str] = field(default_factory=dict)  # every other column, as text


def load_manifest(path: Path) -> dict[str, ManifestRow]:
    """Rows keyed by `safe_clip_id(clip_id)`, so they match the ids the readers make."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise ActrecError(
                    f"labels manifest {path}: missing column(s) {', '.join(missing)}; the header must contain "
                    f"clip_id,label_name (optional: split,label,img_h,img_w and any meta columns), found "
                    f"{','.join(columns) or 'an empty file'}"
                )
            rows: dict[str, ManifestRow] = {}
            for line, record in enumerate(reader, start=2):
                clip_id, row = _parse_row(path, line, record)
                if clip_id in rows:
                    raise ActrecError(
                        f"labels manifest {path} line {line}: clip_id {clip_id!r} appears twice"
                    )
                rows[clip_id] = row
    except OSError as exc:
        raise ActrecError(f"cannot read labels manifest {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ActrecError(f"labels manifest {path} is not a UTF-8 CSV file: {exc}") from None
    return rows


def _parse_row(path: Path, line: int, record: dict[str, str | None]) -> tuple[str, ManifestRow]:
    def cell(name: str) -> str | None:
        value = record.get(name)
        value = value.strip() if isinstance(value, str) else None
        return value or None

    def int_cell(name: str, positive: bool) -> int | None:
        value = cell(name)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise ActrecError(
                f"labels manifest {path} line {line}: {name} must be an integer, found {value!r}"
            ) from None
        if positive and number <= 0:
            raise ActrecError(f"labels manifest {path} line {line}: {name} must be positive, found {number}")
        return number

    raw_id = cell("clip_id")
    if raw_id is None:
        raise ActrecError(f"labels manifest {path} line {line}: empty clip_id")
    try:
        clip_id = safe_clip_id(raw_id)
    except ValueError as exc:
        raise ActrecError(f"labels manifest {path} line {line}: {exc}") from None
    meta = {k: v for k, v in ((k, cell(k)) for k in record if k is not None and k not in KNOWN_COLUMNS) if v}
    row = ManifestRow(
        label_name=cell("label_name"),
        label=int_cell("label", positive=False),
        split=cell("split"),
        img_h=int_cell("img_h", positive=True),
        img_w=int_cell("img_w", positive=True),
        meta=meta,
    )
    return clip_id, row


def apply_manifest(clip: PoseClip, row: ManifestRow | None) -> PoseClip:
    """The clip with the manifest's values where the manifest has them (the manifest wins over the file)."""
    if row is None:
        return clip
    changes: dict = {"meta": {**clip.meta, **row.meta}}
    if row.label_name is not None or row.label is not None:
        changes["label_name"] = row.label_name
        changes["label"] = row.label
    if row.split is not None:
        changes["split"] = row.split
    if row.img_h is not None:
        changes["img_h"] = row.img_h
    if row.img_w is not None:
        changes["img_w"] = row.img_w
    return dataclasses.replace(clip, **changes)


def load_classes(path: Path) -> list[str]:
    """Class names, one per line; line n (0-based) names numeric label n. Trailing blank lines are ignored."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise ActrecError(f"cannot read classes file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ActrecError(f"classes file {path} is not UTF-8 text: {exc}") from None
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    for number, name in enumerate(names, start=1):
        if not name:
            raise ActrecError(
                f"classes file {path} line {number} is empty: label {number - 1} would have no name"
            )
    if not names:
        raise ActrecError(f"classes file {path} is empty")
    if len(set(names)) != len(names):
        raise ActrecError(f"classes file {path} lists a class name twice")
    return names
