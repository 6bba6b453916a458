"""DeepLabCut predictions, one file per video: `<video>DLC_<scorer>.h5` or `.csv`.

The table has one row per frame and a column MultiIndex scorer / [individuals] / bodyparts / coords (x, y,
likelihood); multi-animal projects add the `individuals` level, whose names are the track ids (one person slot
each, in the file's order; the `single` pseudo-individual of unique body parts is not a person). The CSV has
those levels as its first 3 or 4 rows (`scorer,...`, `[individuals,...]`, `bodyparts,...`, `coords,...`). The .h5 is
pandas' HDF5 table, read with h5py; its column labels are pickled by PyTables and are read with the restricted
unpickler (strings and tuples only), never with pickle itself.

likelihood is the score; NaN coordinates (frames DeepLabCut dropped) are missing. Body parts are joints: when
their names are joint names of the layout they are read in the layout's order (or refused with both orders);
names the layout does not know at all (an animal skeleton) keep the file's order. Image size: the extent.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject
from etl.readers.common import (
    ClipError,
    describe_error,
    expand_files,
    extent_size,
    fallback_clip_id,
    file_reject,
    guarded,
    mark_missing,
)
from etl.readers.frame_gaps import check_frame_span
from etl.readers.joint_order import order_if_named
from etl.readers.options import ReadContext
from etl.readers.peek import first_line
from etl.readers.registry import FormatSpec
from etl.readers.safe_pickle import SafeUnpickler

FORMAT = "dlc"
PATTERNS = ("*.csv", "*.h5", "*.hdf5")
_SINGLE = "single"


def read(paths: list[Path], ctx: ReadContext) -> Iterator[PoseClip | Reject]:
    for path in expand_files(paths, PATTERNS):
        clip_id = clip_id_of(path)
        try:
            columns, frames, values = _load_h5(path) if path.suffix.lower() != ".csv" else _load_csv(path)
        except ClipError as exc:
            yield file_reject(path, str(exc))
            continue
        yield guarded(
            lambda path=path, c=columns, f=frames, v=values: _clip(path, c, f, v, ctx), clip_id, str(path)
        )


def clip_id_of(path: Path) -> str:
    """`walk01DLC_resnet50_projAug1shuffle1_50000` -> `walk01` (DeepLabCut appends its scorer to the video name)."""
    stem = path.stem
    cut = stem.find("DLC_")
    return fallback_clip_id(stem[:cut] if cut > 0 else stem)


def is_dlc_h5(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return isinstance(f.get("df_with_missing"), h5py.Group)
    except Exception:
        return False


def _load_csv(path: Path) -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ClipError(f"not a readable CSV file: {describe_error(exc)}") from None
    n_header = next(
        (i + 1 for i, row in enumerate(rows[:5]) if row and row[0].strip().lower() == "coords"), None
    )
    if n_header not in (3, 4) or rows[0][0].strip().lower() != "scorer":
        raise ClipError("not a DeepLabCut CSV: expected header rows scorer, [individuals,] bodyparts, coords")
    header = rows[:n_header]
    columns = [tuple(row[j].strip() for row in header) for j in range(1, len(header[-1]))]
    body = [row for row in rows[n_header:] if row]
    try:
        values = np.array(
            [[float(v) if v.strip() else np.nan for v in row[1 : len(columns) + 1]] for row in body]
        )
    except ValueError:
        raise ClipError("a value below the header is not a number") from None
    if values.size and values.shape[1] != len(columns):
        raise ClipError(f"rows have {values.shape[1]} values but the header names {len(columns)} columns")
    frames = np.array([_frame_number(row[0], i) for i, row in enumerate(body)], np.int64)
    return columns, frames, values.reshape(len(body), len(columns))


def _frame_number(text: str, row: int) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else row  # labelled-data tables index rows by image path


def _load_h5(path: Path) -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray]:
    try:
        f = h5py.File(path, "r")
    except Exception as exc:
        raise ClipError(f"not a readable HDF5 file (corrupt or truncated?): {describe_error(exc)}") from None
    with f:
        group = f.get("df_with_missing")
        table = group.get("table") if isinstance(group, h5py.Group) else None
        if not isinstance(table, h5py.Dataset) or table.dtype.names is None:
            raise ClipError("not a DeepLabCut .h5: no pandas table 'df_with_missing/table'")
        blocks = [name for name in table.dtype.names if name.startswith("values_block_")]
        if len(blocks) != 1:
            raise ClipError(f"expected one block of float values in the table, found {len(blocks)}")
        kind = table.attrs.get(f"{blocks[0]}_kind")
        try:
            columns = SafeUnpickler(io.BytesIO(bytes(kind)), source=f"{path} column labels").load()
        except ActrecError:
            raise
        except Exception as exc:
            raise ClipError(f"cannot read the column labels: {describe_error(exc)}") from None
        data = table[()]
        values = np.asarray(data[blocks[0]], dtype=np.float64)  # (rows, columns)
        frames = np.asarray(data["index"]) if "index" in table.dtype.names else np.arange(len(values))
    if not isinstance(columns, list) or not all(isinstance(c, tuple) and len(c) in (3, 4) for c in columns):
        raise ClipError("column labels must be (scorer, [individual,] bodypart, coord) tuples")
    if values.ndim != 2 or values.shape[1] != len(columns):
        raise ClipError(f"the table has {values.shape} values for {len(columns)} column labels")
    if not np.issubdtype(frames.dtype, np.integer):
        frames = np.arange(len(values))
    return [tuple(map(str, c)) for c in columns], frames.astype(np.int64), values


def _clip(
    path: Path, columns: list[tuple[str, ...]], frames: np.ndarray, values: np.ndarray, ctx
) -> PoseClip:
    multi = len(columns[0]) == 4 if columns else False
    individuals: list[str] = []
    bodyparts: list[str] = []
    where: dict[tuple[str, str, str], int] = {}
    for j, col in enumerate(columns):
        individual, part, coord = (col[1], col[2], col[3]) if multi else ("", col[1], col[2])
        if individual == _SINGLE:
            continue  # unique body parts (objects), not a person
        if individual not in individuals:
            individuals.append(individual)
        if part not in bodyparts:
            bodyparts.append(part)
        where[(individual, part, coord.lower())] = j
    if not bodyparts:
        raise ClipError("no body part columns")
    if len(frames) == 0:
        raise ClipError("no frames")
    if len(set(frames.tolist())) != len(frames) or frames.min() < 0:
        raise ClipError("frame numbers must be distinct and >= 0")
    n_frames = int(frames.max()) + 1  # DeepLabCut numbers the video's frames from 0
    check_frame_span(n_frames, len(frames), "frame numbers")
    ctx.options.check_clip_size(len(individuals), n_frames, len(bodyparts))  # before the (M, T, V) arrays
    keypoints = np.full((len(individuals), n_frames, len(bodyparts), 2), np.nan, np.float32)  # (M, T, V, 2)
    scores = np.zeros((len(individuals), n_frames, len(bodyparts)), np.float32)  # (M, T, V)
    for m, individual in enumerate(individuals):
        for v, part in enumerate(bodyparts):
            x, y = where.get((individual, part, "x")), where.get((individual, part, "y"))
            if x is None or y is None:
                raise ClipError(f"no x/y columns for {individual + ' ' if individual else ''}{part}")
            keypoints[m, frames, v, 0], keypoints[m, frames, v, 1] = values[:, x], values[:, y]
            lik = where.get((individual, part, "likelihood"))
            scores[m, frames, v] = values[:, lik] if lik is not None else 1.0
    scores[np.isnan(scores)] = 0.0
    mark_missing(keypoints, scores, ~np.isfinite(keypoints).all(axis=-1) | ~(scores > 0))
    order = order_if_named(bodyparts, ctx.options.layout, "the body parts")
    if order is not None:
        keypoints, scores = keypoints[:, :, order], scores[:, :, order]
    img_h, img_w = extent_size(keypoints)
    return PoseClip(
        clip_id=clip_id_of(path),
        keypoints=keypoints,
        scores=scores,
        label_name=None,
        split=None,
        img_h=img_h,
        img_w=img_w,
        source=str(path),
        source_format=FORMAT,
        meta={"dlc_scorer": columns[0][0]} if columns else {},
    )


def sniff(path: Path) -> bool:
    """A pandas HDF5 table under DeepLabCut's key, a CSV whose header rows start with `scorer`, or the
    `<video>DLC_<scorer>_meta.pickle` / `_full.pickle` DeepLabCut writes beside them (claimed so that a folder of
    DeepLabCut output is told as one format; the reader reads only the tables)."""
    suffix = path.suffix.lower()
    if suffix == ".pickle":
        return "DLC_" in path.stem and path.stem.endswith(("_meta", "_full"))
    if suffix == ".csv":
        return first_line(path).startswith("scorer,")
    return suffix in (".h5", ".hdf5") and is_dlc_h5(path)


SPEC = FormatSpec(name=FORMAT, read=read, sniff=sniff)
