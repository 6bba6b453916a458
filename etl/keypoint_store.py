"""The keypoint store: every clip's poses in one zarr v3 group, ragged clips stored compactly.

Layout (format_version 1):
    coords       (R, V, 2) float32   all clips' rows concatenated; a clip's rows are ordered (person, frame),
                                     i.e. rows[o_i : o_i + M_i*T_i] reshape to (M_i, T_i, V, 2); NaN = missing
    scores       (R, V)    float32   confidence in [0, 1]; 0 = missing
    row_offsets  (N + 1,)  int64     o_i: first row of clip i (store order = clip table order)
    clips.parquet / rejects.parquet  the clip table and what was rejected, with reasons
    attrs: kind, format_version, layout, joint_names, classes, content_hash, ingest (the parameters used)
Persons are padded to each clip's own maximum, not to a global one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from zarr.codecs import BloscCodec

from etl.cliptable import read_clip_table
from etl.poseclip import PoseClip
from etl.skeleton import Layout, get_layout
from etl.storeio import open_group

KIND = "actrec.keypoints"
FORMAT_VERSION = 1
ROWS_PER_CHUNK = 1 << 16
_CODEC = BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")


class KeypointWriter:
    """Streams clips into the arrays of a (temporary) store, writing whole chunks as they fill."""

    def __init__(
        self, folder: Path, layout: Layout, *, append: bool = False, rows_per_chunk: int = ROWS_PER_CHUNK
    ):
        self.rows_per_chunk = rows_per_chunk
        v = layout.n_joints
        if append:
            self.group = zarr.open_group(str(folder), mode="r+")
            self.coords, self.scores = self.group["coords"], self.group["scores"]
            self.row_offsets = [int(x) for x in self.group["row_offsets"][:]]
            # Identity chains on from the old store's: cheap, and still changes with every appended clip.
            self._hash = hashlib.sha256(str(self.group.attrs["content_hash"]).encode())
        else:
            self.group = zarr.open_group(str(folder), mode="w")
            self.coords = self.group.create_array(
                "coords",
                shape=(0, v, 2),
                chunks=(rows_per_chunk, v, 2),
                dtype="float32",
                compressors=_CODEC,
                fill_value=np.nan,
                dimension_names=("row", "joint", "xy"),
            )
            self.scores = self.group.create_array(
                "scores",
                shape=(0, v),
                chunks=(rows_per_chunk, v),
                dtype="float32",
                compressors=_CODEC,
                fill_value=0.0,
                dimension_names=("row", "joint"),
            )
            self.row_offsets = [0]
            self._hash = hashlib.sha256()
        self._coords_buf: list[np.ndarray] = []
        self._scores_buf: list[np.ndarray] = []
        self._buffered = 0

    def add(self, clip: PoseClip) -> None:
        m, t, v, _ = clip.keypoints.shape
        coords = np.ascontiguousarray(clip.keypoints, dtype=np.float32).reshape(m * t, v, 2)  # (M*T, V, 2)
        scores = np.ascontiguousarray(clip.scores, dtype=np.float32).reshape(m * t, v)  # (M*T, V)
        self._hash.update(clip.clip_id.encode() + b"\0")
        self._hash.update(np.asarray([m, t, v], np.int64).tobytes())
        self._hash.update(coords.tobytes())
        self._hash.update(scores.tobytes())
        self._coords_buf.append(coords)
        self._scores_buf.append(scores)
        self._buffered += m * t
        self.row_offsets.append(self.row_offsets[-1] + m * t)
        if self._buffered >= self.rows_per_chunk:
            self._flush(whole_chunks_only=True)

    def _flush(self, whole_chunks_only: bool) -> None:
        if not self._buffered:
            return
        coords = np.concatenate(self._coords_buf)
        scores = np.concatenate(self._scores_buf)
        # Whole chunks only: in a new store every append stays chunk-aligned, so no chunk is encoded twice
        # (appending to an existing store re-encodes its last, partial chunk once).
        n = (len(coords) // self.rows_per_chunk) * self.rows_per_chunk if whole_chunks_only else len(coords)
        self.coords.append(coords[:n])
        self.scores.append(scores[:n])
        self._coords_buf, self._scores_buf = [coords[n:]], [scores[n:]]
        self._buffered = len(coords) - n

    def close(self) -> str:
        """Write what is buffered and the offsets; return the content hash (the store's identity)."""
        self._flush(whole_chunks_only=False)
        offsets = np.asarray(self.row_offsets, np.int64)
        self.group.create_array(
            "row_offsets",
            data=offsets,
            chunks=(max(len(offsets), 1),),
            compressors=_CODEC,
            overwrite=True,
            dimension_names=("clip",),
        )
        return self._hash.hexdigest()


@dataclass
class KeypointStore:
    """A finished keypoint store opened for reading."""

    path: Path
    group: zarr.Group
    table: pd.DataFrame
    row_offsets: np.ndarray  # (N + 1,) int64

    @classmethod
    def open(cls, path: str | Path) -> KeypointStore:
        group = open_group(path, KIND, FORMAT_VERSION)
        return cls(Path(path), group, read_clip_table(path), group["row_offsets"][:])

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @property
    def layout(self) -> Layout:
        return get_layout(self.group.attrs["layout"])

    @property
    def classes(self) -> list[str]:
        return list(self.group.attrs["classes"])

    def __len__(self) -> int:
        return len(self.table)

    def read_range(self, start: int, stop: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Clips [start, stop) as (keypoints (M, T, V, 2), scores (M, T, V)), read in one pass."""
        r0, r1 = int(self.row_offsets[start]), int(self.row_offsets[stop])
        coords = self.group["coords"][r0:r1]  # (rows, V, 2)
        scores = self.group["scores"][r0:r1]  # (rows, V)
        out = []
        for i in range(start, stop):
            m, t = int(self.table.n_persons.iat[i]), int(self.table.n_frames.iat[i])
            a, b = int(self.row_offsets[i]) - r0, int(self.row_offsets[i + 1]) - r0
            v = coords.shape[1]
            out.append((coords[a:b].reshape(m, t, v, 2), scores[a:b].reshape(m, t, v)))
        return out

    def read_clip(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.read_range(index, index + 1)[0]
