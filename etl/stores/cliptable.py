"""The clip table: one row per clip, in store order, as parquet beside the zarr arrays of a store.

Users query it with pandas (`etl.read_clips(store).query("split == 'test'")`); every stage carries it forward.
The command lines select clips with `query_clips`, which never hands an expression to pandas.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from etl.common.errors import ActrecError
from etl.stores import safe_query

CLIPS_FILE = "clips.parquet"
REJECTS_FILE = "rejects.parquet"

# Always present, in this order; dataset-specific columns (viewpoint, subject, camera...) follow.
CORE_COLUMNS = (
    "clip_id",
    "label",
    "label_name",
    "split",
    "n_frames",
    "n_persons",
    "img_h",
    "img_w",
    "layout",
    "source",
    "source_format",
)
REJECT_COLUMNS = ("clip_id", "source", "reason")


def read_clip_table(store: str | Path) -> pd.DataFrame:
    """The clip table of a keypoint or heatmap store (a zarr folder)."""
    path = Path(store) / CLIPS_FILE
    if not Path(store).exists():
        raise ActrecError(f"{store} does not exist (expected an actrec store, a .zarr folder)")
    if not path.exists():
        raise ActrecError(
            f"{store} has no clip table ({CLIPS_FILE}): is it an actrec store? "
            "Create one with `actrec-etl ingest`."
        )
    return _read_parquet(path)


def read_rejects(store: str | Path) -> pd.DataFrame:
    path = Path(store) / REJECTS_FILE
    if not path.exists():
        return pd.DataFrame(columns=list(REJECT_COLUMNS))
    return _read_parquet(path)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises OSError, ArrowInvalid, ... for a damaged file
        raise ActrecError(f"{path} is damaged and cannot be read ({type(exc).__name__}: {exc})") from None


def clip_ids_digest(table: pd.DataFrame) -> str:
    """sha256 of the clip ids in store order: ties the table's rows to the arrays' rows."""
    return hashlib.sha256("\0".join(map(str, table["clip_id"])).encode()).hexdigest()


def table_attrs(table: pd.DataFrame) -> dict:
    """What a store records about its clip table (checked by `check_table_matches`)."""
    return {"n_clips": len(table), "clip_ids_sha256": clip_ids_digest(table)}


def check_table_matches(table: pd.DataFrame, attrs: dict, store: Path, remake: str) -> None:
    """Cheap invariants between a store's clip table and its arrays: row count, ids in order, n_frames >= 1."""
    where = Path(store) / CLIPS_FILE
    if len(table) != attrs.get("n_clips"):
        raise ActrecError(
            f"{where} has {len(table)} rows but the store holds {attrs.get('n_clips')} clips: rows were "
            f"deleted or added. {remake}."
        )
    if clip_ids_digest(table) != attrs.get("clip_ids_sha256"):
        raise ActrecError(
            f"{where}: the clip ids differ from the store's (rows were swapped, duplicated or renamed). {remake}."
        )
    n_frames = table["n_frames"].to_numpy()
    if not np.issubdtype(n_frames.dtype, np.integer) or (n_frames < 1).any():
        raise ActrecError(f"{where}: n_frames must be positive integers. {remake}.")


def write_table(df: pd.DataFrame, path: Path) -> None:
    # Written into a store's temporary folder, which is renamed as a whole: no partial file is ever visible.
    try:
        df.to_parquet(path, index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ActrecError(
            f"cannot write the clip table {path.name}: {exc} (a column with mixed or unusual "
            "values; check the manifest's extra columns)"
        ) from exc


def order_columns(df: pd.DataFrame) -> pd.DataFrame:
    extra = sorted(c for c in df.columns if c not in CORE_COLUMNS)
    return df[[c for c in CORE_COLUMNS if c in df.columns] + extra]


def query_clips(df: pd.DataFrame, expr: str | None) -> pd.DataFrame:
    """The rows matching a clip-selection expression (pandas query syntax, checked and evaluated by
    `etl.stores.safe_query`: columns, literals, comparisons, boolean logic and a few column methods, no code).

    The one place where `actrec-etl query`, `fit --train-where/--val-where` and `evaluate --where` select clips.
    """
    if not expr:
        return df
    return safe_query.select(df, expr)
