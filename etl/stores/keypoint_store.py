"""The keypoint store: every clip's poses in one zarr v3 group, ragged clips stored compactly.

Layout (format_version 2):
    coords       (R, V, 2) float32   all clips' rows concatenated; a clip's rows are ordered (person, frame),
                                     i.e. rows[o_i : o_i + M_i*T_i] reshape to (M_i, T_i, V, 2); NaN = missing
    scores       (R, V)    float32   confidence in [0, 1]; 0 = missing
    row_offsets  (N + 1,)  int64     o_i: first row of clip i (store order = clip table order)
    checksums    (N,)      uint32    crc32c of each clip's coords bytes then scores bytes, checked on every read
  only when some clip has 3D joints (a store without them has neither array, nor the clip table's `has_3d`):
    coords3d     (R, V, 3) float32   camera-space (x, y, z) as the source gives them, rows as in coords; NaN =
                                     missing, and every row of a clip without 3D (clip table `has_3d` False)
    checksums3d  (N,)      uint32    crc32c of each clip's coords3d bytes then scores bytes
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
COORDS3D = "coords3d"  # the third data array, present only in a store with 3D joints
HAS_3D = "has_3d"  # the clip-table column saying which clips have 3D joints (absent: none has)
NO_3D_HINT = (
    "ingest a source with 3D joints (NTU .skeleton, UTD-MHAD, PYSKL 3D pickles, h5/npz/ST-GCN arrays with "
    "x, y, z) or use --coords 2d"
)
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
            if COORDS3D in self.group:
                self.coords3d = self.group[COORDS3D]
                self.checksums3d = [int(x) for x in self.group["checksums3d"][:]]
            else:  # the old clips have no 3D joints: their checksums3d are computed at close, if needed
                self.coords3d = None
                self.checksums3d = [None] * len(self.checksums)
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
            self.coords3d = None  # created when the first clip with 3D joints comes
            self.checksums3d: list[int | None] = []  # None: a clip without 3D, its checksum computed at close
            self._hash = hashlib.sha256()
        self._n_joints = v
        self._coords_buf: list[np.ndarray] = []
        self._scores_buf: list[np.ndarray] = []
        self._coords3d_buf: list[np.ndarray | int] = []  # (rows, V, 3) of a clip with 3D, or a 2D clip's rows
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
        if clip.keypoints3d is not None:
            coords3d = np.ascontiguousarray(clip.keypoints3d, dtype=np.float32).reshape(
                m * t, v, 3
            )  # (M*T, V, 3)
            self._hash.update(
                b"3d\0" + coords3d.tobytes()
            )  # only then: a 2D-only store's identity is as before
            self.checksums3d.append(clip_checksum(coords3d, scores))
            self._coords3d_buf.append(coords3d)
        else:
            self.checksums3d.append(None)  # only a store with 3D needs it: close() computes it then
            self._coords3d_buf.append(m * t)
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
        if self.coords3d is None and any(not isinstance(b, int) for b in self._coords3d_buf):
            self._start_3d()
        if self.coords3d is not None:
            v = self._n_joints
            coords3d = np.concatenate(
                [_missing_3d(b, v) if isinstance(b, int) else b for b in self._coords3d_buf]
            )  # (rows, V, 3)
            self.coords3d.append(coords3d[:n])
            self._coords3d_buf = [coords3d[n:]]
        else:
            self._coords3d_buf = [len(coords) - n]
        self.coords.append(coords[:n])
        self.scores.append(scores[:n])
        self._coords_buf, self._scores_buf = [coords[n:]], [scores[n:]]
        self._buffered = len(coords) - n

    def _start_3d(self) -> None:
        """Create coords3d at the first clip with 3D joints, NaN for the rows already written (clips without 3D)."""
        v = self._n_joints
        self.coords3d = self.group.create_array(
            COORDS3D,
            shape=(0, v, 3),
            chunks=(self.rows_per_chunk, v, 3),
            dtype="float32",
            compressors=_CODEC,
            fill_value=np.nan,
            dimension_names=("row", "joint", "xyz"),
            config={"write_empty_chunks": True},  # an all-NaN chunk is a file too: verify finds a missing one
        )
        written = self.coords.shape[0]
        for lo in range(0, written, self.rows_per_chunk):  # chunk by chunk: memory stays one chunk
            self.coords3d.append(_missing_3d(min(self.rows_per_chunk, written - lo), v))

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
        if self.coords3d is not None:
            sums3d = np.asarray(_no_3d_checksums(self.scores, self.row_offsets, self.checksums3d), np.uint32)
            self.group.create_array(
                "checksums3d",
                data=sums3d,
                chunks=(max(len(sums3d), 1),),
                overwrite=True,
                dimension_names=("clip",),
            )
        return self._hash.hexdigest()


def _missing_3d(rows: int, n_joints: int) -> np.ndarray:
    """(rows, V, 3) float32 NaN: the coords3d rows of a clip without 3D joints."""
    return np.full((rows, n_joints, 3), np.nan, np.float32)


def _no_3d_checksums(scores: zarr.Array, row_offsets: list[int], sums: list[int | None]) -> list[int]:
    """`sums` (N,) with each None (a clip without 3D joints: its coords3d rows are NaN) replaced by its checksum,
    computed from the scores written. A store without 3D never pays for this."""
    v, todo = scores.shape[1], [k for k, value in enumerate(sums) if value is None]
    out, i = list(sums), 0
    while i < len(todo):  # blocks of such clips within about one chunk of rows: one read per block
        j = i + 1
        while j < len(todo) and row_offsets[todo[j] + 1] - row_offsets[todo[i]] <= ROWS_PER_CHUNK:
            j += 1
        lo = row_offsets[todo[i]]
        block = scores[lo : row_offsets[todo[j - 1] + 1]]  # (rows, V)
        for k in todo[i:j]:
            a, b = row_offsets[k] - lo, row_offsets[k + 1] - lo
            out[k] = clip_checksum(_missing_3d(b - a, v), block[a:b])
        i = j
    return out


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
        data_arrays(path),
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


def data_arrays(path: Path) -> tuple[str, ...]:
    """The arrays whose chunks the per-clip checksums cover: coords and scores, and coords3d where it exists."""
    return DATA_ARRAYS + ((COORDS3D,) if (Path(path) / COORDS3D).is_dir() else ())


def clip_checksum(coords: np.ndarray, scores: np.ndarray) -> int:
    """crc32c of a clip's coords (M*T, V, 2), or coords3d (M*T, V, 3), then scores (M*T, V) float32 bytes."""
    return crc32c.crc32c(np.ascontiguousarray(scores), crc32c.crc32c(np.ascontiguousarray(coords)))


@dataclass
class KeypointStore:
    """A finished keypoint store opened for reading."""

    path: Path
    group: zarr.Group
    table: pd.DataFrame
    row_offsets: np.ndarray  # (N + 1,) int64
    checksums: np.ndarray  # (N,) uint32
    checksums3d: np.ndarray | None  # (N,) uint32, None in a store without 3D joints
    has_3d: np.ndarray  # (N,) bool: which clips have 3D joints
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
        sums3d, has_3d = _open_3d(path, group, table)
        return cls(path, group, table, offsets, sums, sums3d, has_3d, _stamp=stamp)

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

    @property
    def n_clips_3d(self) -> int:
        return int(self.has_3d.sum())

    def read_range(self, start: int, stop: int, coords: str = "2d") -> list[tuple[np.ndarray, np.ndarray]]:
        """Clips [start, stop) as (keypoints (M, T, V, 2), scores (M, T, V)), read in one pass; with
        coords="3d" the keypoints are the 3D joints (M, T, V, 3), and ActrecError when a clip has none."""
        if coords not in ("2d", "3d"):
            raise ActrecError(f"unknown coordinates {coords!r}; choose 2d or 3d")
        if coords == "3d":
            if self.checksums3d is None:
                raise ActrecError(f"{self.path} has no 3D coordinates: {NO_3D_HINT}")
            lacking = np.flatnonzero(~self.has_3d[start:stop])
            if len(lacking):
                raise ActrecError(
                    f"{self.path}: clip {self.table.clip_id.iat[start + int(lacking[0])]} has no 3D coordinates "
                    f"({len(lacking)} of clips {start}-{stop - 1} lack them): {NO_3D_HINT}"
                )
            return self.read_rows(start, stop, COORDS3D)
        return self.read_rows(start, stop, "coords")

    def read_rows(self, start: int, stop: int, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Clips [start, stop) of data array `name` (coords or coords3d) with their scores, each clip checked
        against its checksum; a clip without 3D reads as NaN from coords3d (verify checks those rows too)."""
        sums = self.checksums if name == "coords" else self.checksums3d
        r0, r1 = int(self.row_offsets[start]), int(self.row_offsets[stop])
        coords = self.group[name][r0:r1]  # (rows, V, 2 or 3)
        scores = self.group["scores"][r0:r1]  # (rows, V)
        out = []
        for i in range(start, stop):
            m, t = int(self.table.n_persons.iat[i]), int(self.table.n_frames.iat[i])
            a, b = int(self.row_offsets[i]) - r0, int(self.row_offsets[i + 1]) - r0
            v, c = coords.shape[1], coords.shape[2]
            if clip_checksum(coords[a:b], scores[a:b]) != int(sums[i]):
                if store_stamp(self.path) != self._stamp:  # its offsets/checksums are the old store's
                    raise replaced_error(self.path, "reader")
                raise ActrecError(
                    f"{self.path}: clip {self.table.clip_id.iat[i]} (rows {a + r0}-{b + r0} of {name}/scores) "
                    "fails its checksum: the store is damaged (run `actrec-etl verify`). " + REMAKE + "."
                )
            out.append((coords[a:b].reshape(m, t, v, c), scores[a:b].reshape(m, t, v)))
        return out

    def read_clip(self, index: int, coords: str = "2d") -> tuple[np.ndarray, np.ndarray]:
        return self.read_range(index, index + 1, coords)[0]


def _open_3d(path: Path, group: zarr.Group, table: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray]:
    """(checksums3d or None, has_3d (N,) bool) of an opened store; a store written before 3D has neither."""
    if COORDS3D not in group:
        if HAS_3D in table.columns and table[HAS_3D].any():
            raise ActrecError(
                f"{path}: the clip table says some clips have 3D joints, but {COORDS3D} is missing. {REMAKE}."
            )
        return None, np.zeros(len(table), bool)
    sums3d = group["checksums3d"][:] if "checksums3d" in group else np.zeros(0, np.uint32)
    if (
        HAS_3D not in table.columns
        or len(sums3d) != len(table)
        or group[COORDS3D].shape[0] != group["coords"].shape[0]
    ):
        raise ActrecError(f"{path}: {COORDS3D}/checksums3d do not match the clip table and coords. {REMAKE}.")
    return sums3d, table[HAS_3D].to_numpy(bool)
