"""The keypoint store: every clip's poses in one zarr v3 group, ragged clips stored compactly.

Layout (format_version 2):
    coords       (R, V, 2) float32   all clips' rows concatenated; a clip's rows are ordered (person, frame),
                                     i.e. rows[o_i : o_i + M_i*T_i] reshape to (M_i, T_i, V, 2); NaN = missing
    scores       (R, V)    float32   confidence in [0, 1]; 0 = missing
    row_offsets  (N + 1,)  int64     o_i: first row of clip i (store order = clip table order)
    checksums    (N,)      uint32    crc32c of each clip's coords bytes then scores bytes, checked on every read
    clips.parquet / rejects.parquet  the clip table and what was rejected, with reasons
    attrs: kind, format_version, layout, joint_names, [layout_def: a layout that is not built in,] classes, content_hash, ingest (the parameters used),
           complete, clip_ids_sha256, integrity (sha256 of every file but the coords/scores chunks, and of
           the attrs: see etl.stores.storeio.seal)
Persons are padded to each clip's own maximum, not to a global one. `KeypointWriter` writes the arrays and
`finalise_store` the tables and attrs (`actrec-etl ingest` calls them); `KeypointStore` reads a store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import crc32c
import numpy as np
import pandas as pd
import zarr
from zarr.codecs import BloscCodec

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip
from etl.pose.layout_def import stored_layout
from etl.pose.skeleton import Layout
from etl.stores.cliptable import (
    CLIPS_FILE,
    REJECTS_FILE,
    check_table_matches,
    read_clip_table,
    table_attrs,
    write_table,
)
from etl.stores.storeio import open_group, replaced_error, seal, store_stamp

KIND = "actrec.keypoints"
FORMAT_VERSION = 2  # 2: per-clip checksums, sealed metadata, clip table tied to the arrays
DATA_ARRAYS = ("coords", "scores")  # chunks covered by the per-clip checksums, not by the seal
REMAKE = "Re-run `actrec-etl ingest` (with --overwrite) to re-create it"
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
            self.checksums = [int(x) for x in self.group["checksums"][:]]
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
            self.checksums = []
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
        self.checksums.append(clip_checksum(coords, scores))
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
        sums = np.asarray(self.checksums, np.uint32)
        self.group.create_array(
            "checksums", data=sums, chunks=(max(len(sums), 1),), overwrite=True, dimension_names=("clip",)
        )
        return self._hash.hexdigest()


def finalise_store(
    path: Path,
    layout: Layout,
    table: pd.DataFrame,
    rejects: pd.DataFrame,
    *,
    classes: list[str],
    label_mode: str,
    content_hash: str,
    ingest: dict,
) -> None:
    """Finish a store whose arrays KeypointWriter wrote (and closed, giving `content_hash`): write the clip
    table and the rejects, then seal the store with its attrs (complete=True). `ingest`: the parameters used."""
    write_table(table, path / CLIPS_FILE)
    write_table(rejects, path / REJECTS_FILE)
    seal(
        path,
        DATA_ARRAYS,
        {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            "layout": layout.name,
            "joint_names": list(layout.joints),
            **({} if layout.definition is None else {"layout_def": layout.definition}),
            "classes": classes,
            "label_mode": label_mode,
            **table_attrs(table),
            "content_hash": content_hash,
            "ingest": ingest,
        },
    )


def clip_checksum(coords: np.ndarray, scores: np.ndarray) -> int:
    """crc32c of a clip's coords (M*T, V, 2) then scores (M*T, V) float32 bytes."""
    return crc32c.crc32c(np.ascontiguousarray(scores), crc32c.crc32c(np.ascontiguousarray(coords)))


@dataclass
class KeypointStore:
    """A finished keypoint store opened for reading."""

    path: Path
    group: zarr.Group
    table: pd.DataFrame
    row_offsets: np.ndarray  # (N + 1,) int64
    checksums: np.ndarray  # (N,) uint32
    _stamp: tuple = field(default=(), repr=False)  # store_stamp at open: a replaced store is not damage

    @classmethod
    def open(cls, path: str | Path) -> KeypointStore:
        """Open a finished store; its metadata is checked against the seal, the clip table against the arrays."""
        path = Path(path)
        stamp = store_stamp(path)
        group = open_group(path, KIND, FORMAT_VERSION, REMAKE)
        table = read_clip_table(path)
        offsets, sums = group["row_offsets"][:], group["checksums"][:]
        check_table_matches(table, dict(group.attrs), path, REMAKE)
        rows = table["n_persons"].to_numpy(np.int64) * table["n_frames"].to_numpy(np.int64)
        if (
            len(offsets) != len(table) + 1
            or len(sums) != len(table)
            or not np.array_equal(np.diff(offsets), rows)
        ):
            raise ActrecError(
                f"{path}: row_offsets/checksums do not match the clip table's n_persons x n_frames. {REMAKE}."
            )
        return cls(path, group, table, offsets, sums, _stamp=stamp)

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @property
    def layout(self) -> Layout:
        return stored_layout(self.group.attrs, str(self.path))

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
            if clip_checksum(coords[a:b], scores[a:b]) != int(self.checksums[i]):
                if store_stamp(self.path) != self._stamp:  # its offsets/checksums are the old store's
                    raise replaced_error(self.path, "reader")
                raise ActrecError(
                    f"{self.path}: clip {self.table.clip_id.iat[i]} (rows {a + r0}-{b + r0} of coords/scores) "
                    "fails its checksum: the store is damaged (run `actrec-etl verify`). " + REMAKE + "."
                )
            out.append((coords[a:b].reshape(m, t, v, 2), scores[a:b].reshape(m, t, v)))
        return out

    def read_clip(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.read_range(index, index + 1)[0]
