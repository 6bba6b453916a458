"""actrec ETL: pose files -> keypoint store (zarr) + clip table (parquet) -> heatmap store (zarr)."""

from etl.common.errors import ActrecError

__all__ = ["ActrecError", "read_clips"]


def read_clips(store):
    """The clip table of a keypoint or heatmap store as a pandas DataFrame (one row per clip, store order)."""
    from etl.stores.cliptable import read_clip_table

    return read_clip_table(store)
