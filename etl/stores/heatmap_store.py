"""The heatmap store: every frame of every clip rendered once, quantised, compressed and sharded.

Layout (format_version 3):
    heatmaps    (F, C, S, S) uint8 (or float16)  the frames of all clips; clip i is rows
                                                 [clip_start[i], clip_start[i] + n_frames[i])
    clip_start  (N,)   int64    a multiple of frames_per_chunk: a clip never shares a chunk with another
    n_frames    (N,)   int64
    crop_boxes  (N, 4) float64  per-clip PoseCompact box [x0, y0, x1, y1] in source-image pixels
    checksums   (N,)   uint32   crc32c of each clip's decoded bytes, checked by `actrec-etl verify` and read_clip
    clips.parquet               the keypoint store's clip table, same rows in the same order
    attrs: the render spec once, under "render" (etl.heatmaps.spec.RenderSpec.to_attrs), with the layout's
           channels, flip permutation and limbs; fingerprint, keypoints (the input's path and content hash),
           classes, quantisation; complete, n_clips, clip_ids_sha256, integrity (sha256 of every file but the
           heatmaps shards, and of the attrs: see etl.stores.storeio.seal); opening checks all of it, verify also
           decodes every chunk
`create_store` and `finalise_store` write a store (`actrec-etl render` calls them), `HeatmapStore` reads one.
Chunks are (frames_per_chunk, C, S, S); shards group chunks_per_shard chunks so a dataset is a few hundred files.
Render partitions own whole shards (two writers never touch one shard: zarr would lose data), and chunks
padded past a clip's end hold zeros, which compress to a few bytes.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import crc32c
import numpy as np
import pandas as pd
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from etl.common.errors import ActrecError
from etl.common.locks import shared_lock
from etl.heatmaps.spec import CODECS, RenderSpec
from etl.pose.layout_def import stored_layout
from etl.pose.skeleton import Layout
from etl.stores.cliptable import (
    CLIPS_FILE,
    REJECTS_FILE,
    check_table_matches,
    read_clip_table,
    read_rejects,
    table_attrs,
    write_table,
)
from etl.stores.keypoint_store import KeypointStore
from etl.stores.shard_reader import CheckedChunks, ShardedFrameReader
from etl.stores.storeio import check_unchanged, open_group, seal, store_stamp

KIND = "actrec.heatmaps"
# 2: sealed metadata, clip table tied to the arrays, no unfinished or missing data read;
# 3: the render spec written once (under "render"; version 2 also had its values flat in the attrs)
FORMAT_VERSION = 3
DATA_ARRAYS = ("heatmaps",)  # shards covered by chunk crc32c + per-clip checksums, not by the seal
REMAKE = "Re-run `actrec-etl render` (with --overwrite) to re-create it"
UINT8_SCALE = 255  # stored value q = round(v * 255): |v - q / 255| <= 1 / 510


@dataclass(frozen=True)
class Partition:
    """A unit of render work: clips [clip_lo, clip_hi) in frames [frame_lo, frame_hi), whole shards."""

    index: int
    clip_lo: int
    clip_hi: int
    frame_lo: int
    frame_hi: int


def plan_layout(
    n_frames: np.ndarray, frames_per_chunk: int, chunks_per_shard: int
) -> tuple[np.ndarray, list[Partition], int]:
    """Place clips on the frame axis: each clip starts on a chunk boundary; clips are packed into shards in
    order, a clip that does not fit in the current shard's rest starts the next shard. A partition ends at
    every shard boundary that no clip crosses, so it spans one shard, or the shards of one long clip (the
    render draws and writes a partition one shard at a time, so its memory is bounded whatever the clip
    lengths: etl/commands/render.py). Returns clip starts (N,), the partitions
    and the total frame count. Pure function of its inputs, so a resumed render finds the same plan."""
    fb, shard = frames_per_chunk, frames_per_chunk * chunks_per_shard
    starts = np.zeros(len(n_frames), np.int64)
    parts: list[Partition] = []
    pos, part_lo_clip, part_lo_frame = 0, 0, 0
    for i, t in enumerate(np.asarray(n_frames, np.int64)):
        span = -(-int(t) // fb) * fb  # chunk-rounded
        shard_end = (pos // shard + 1) * shard
        if pos > part_lo_frame and (pos + span > shard_end or pos % shard == 0):
            # close the current partition at its shard boundary (the clip would cross it, or starts on it)
            end = -(-pos // shard) * shard
            parts.append(Partition(len(parts), part_lo_clip, i, part_lo_frame, end))
            pos, part_lo_clip, part_lo_frame = end, i, end
        starts[i] = pos
        pos += span
    if len(n_frames):
        parts.append(Partition(len(parts), part_lo_clip, len(n_frames), part_lo_frame, pos))
    return starts, parts, pos


def compressors(codec: str, level: int) -> tuple:
    """Inner-chunk codecs, then crc32c so a damaged chunk fails loudly at decode. lz4 (blosc, no shuffle: bytes
    are 1 wide; the default) decodes these sparse maps at ~37 GB/s, ~50x smaller than raw uint8; zstd stores
    ~2.4x less and decodes at ~20 GB/s. See docs/benchmarks.md for the measurements."""
    if codec == "none":
        return (Crc32cCodec(),)
    if codec == "zstd":
        return (ZstdCodec(level=level), Crc32cCodec())
    if codec == "lz4":
        return (BloscCodec(cname="lz4", clevel=level, shuffle="noshuffle"), Crc32cCodec())
    raise ActrecError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")


def render_attrs(spec: RenderSpec, layout: Layout, keypoints: KeypointStore) -> dict:
    """What a heatmap store records about its render and its input; the keypoint source, which stands in for
    the store `actrec-etl render` would make, presents the same."""
    return {
        "fingerprint": spec.fingerprint(keypoints.attrs["content_hash"]),
        **spec.to_attrs(layout),
        "keypoints": {
            "path": str(keypoints.path),
            "content_hash": keypoints.attrs["content_hash"],
            "format_version": keypoints.attrs["format_version"],
        },
    }


def create_store(path: Path, kp: KeypointStore, spec: RenderSpec, starts: np.ndarray, total: int) -> None:
    """A new, unfinished store at `path` (complete=False): every array created up front (the plan is fixed,
    so render partitions only ever write into them), the attrs written once. starts (N,): clip_start."""
    channels = kp.layout.channel_names(spec.channels)
    s, c, fb = spec.size, len(channels), spec.frames_per_chunk
    group = zarr.open_group(str(path), mode="w")
    group.create_array(
        "heatmaps",
        shape=(total, c, s, s),
        dtype=spec.dtype,
        chunks=(fb, c, s, s),
        shards=(fb * spec.chunks_per_shard, c, s, s),
        compressors=compressors(spec.codec, spec.level),
        fill_value=0,
        dimension_names=("frame", "channel", "y", "x"),
    )
    group.create_array("clip_start", data=starts, dimension_names=("clip",))
    group.create_array("n_frames", data=kp.table["n_frames"].to_numpy(np.int64), dimension_names=("clip",))
    quant = (
        {"scale": UINT8_SCALE, "max_abs_error": 1 / (2 * UINT8_SCALE), "rule": "q = floor(v * 255 + 0.5)"}
        if spec.dtype == "uint8"
        else {"scale": 1, "max_abs_error": "float16 rounding (~5e-4 at 1.0)"}
    )
    group.attrs.update(
        {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            "complete": False,
            **render_attrs(spec, kp.layout, kp),
            "classes": kp.classes,
            "n_clips": len(kp),
            "quantisation": quant,
        }
    )


def finalise_store(
    path: Path, kp: KeypointStore, boxes: np.ndarray, checksums: np.ndarray, *, scratch: Path | None = None
) -> None:
    """Write the per-clip crop boxes (N, 4) and checksums (N,), copy the keypoint store's tables, remove the
    writer's `scratch` folder inside the store (it must not be sealed), then seal (complete=True). The
    heatmaps must all be written: until the seal, a crash leaves the writer's state as it was."""
    group = zarr.open_group(str(path), mode="r+")
    group.create_array("crop_boxes", data=boxes, dimension_names=("clip", "xyxy"), overwrite=True)
    group.create_array("checksums", data=checksums, dimension_names=("clip",), overwrite=True)
    write_table(kp.table, path / CLIPS_FILE)
    write_table(read_rejects(kp.path), path / REJECTS_FILE)
    if scratch is not None:
        shutil.rmtree(scratch)
    seal(path, DATA_ARRAYS, table_attrs(kp.table))


@contextmanager
def reading_store(path: str | Path, what: str):
    """Hold a shared lock on a heatmap store while `what` (a fit, an evaluation) reads it, so no render
    replaces it meanwhile; if it is replaced anyway (by other tools: mv, dvc checkout), any error that follows
    becomes one line saying so instead of a report of damage."""
    path = Path(path)
    with shared_lock(path, what):
        before = store_stamp(path)
        try:
            yield
        except ActrecError:
            if store_stamp(path) != before:
                raise ActrecError(
                    f"{path} was replaced while the {what} was reading it: the {what} stopped; "
                    f"run it again on the new store"
                ) from None
            raise


def shard_key(shard: int) -> str:
    """Store-relative path of heatmap shard `shard` (zarr v3 default keys, frames on the first axis)."""
    return f"heatmaps/c/{shard}/0/0/0"


def missing_shards(path: Path, total_frames: int, shard_frames: int) -> list[str]:
    """Shard files that should exist but do not: every shard of a finished render is written (padding too),
    so a missing one is lost data, never zeros."""
    n = -(-int(total_frames) // int(shard_frames))
    return [shard_key(i) for i in range(n) if not (Path(path) / shard_key(i)).is_file()]


def value_scale(dtype: str) -> float:
    """Divide stored values by this to get heatmap values in [0, 1]."""
    return float(UINT8_SCALE) if np.dtype(dtype) == np.uint8 else 1.0


def clip_checksum(frames: np.ndarray) -> int:
    """crc32c (hardware-accelerated) of a clip's decoded frames (T, C, S, S), stored at render, checked by verify."""
    return crc32c.crc32c(np.ascontiguousarray(frames))


@dataclass
class HeatmapStore:
    """A finished heatmap store opened for reading (the trainer's data source)."""

    path: Path
    group: zarr.Group
    table: pd.DataFrame
    clip_start: np.ndarray  # (N,) int64
    n_frames: np.ndarray  # (N,) int64
    _reader: ShardedFrameReader | bool | None = field(default=None, repr=False)  # fast path; False = use zarr
    _stamp: tuple = field(default=(), repr=False)
    checksums: np.ndarray | None = field(default=None, repr=False)  # (N,) uint32: what read_clip checks
    _clip_ids: list[str] | None = field(default=None, repr=False)
    checked: CheckedChunks | None = field(
        default=None, repr=False
    )  # shared by loader workers (train/sources/heatmaps.py)

    @classmethod
    def open(cls, path: str | Path) -> HeatmapStore:
        """Open a finished store. Refused: an unfinished render, metadata that differs from the seal, a clip
        table that does not match the arrays, a missing shard file. Chunk data is checked as it is read."""
        path = Path(path)
        stamp = store_stamp(path)
        group = open_group(path, KIND, FORMAT_VERSION, REMAKE)
        table = read_clip_table(path)
        attrs = dict(group.attrs)
        check_table_matches(table, attrs, path, REMAKE)
        starts, n_frames = group["clip_start"][:], group["n_frames"][:]
        heatmaps = group["heatmaps"]
        total, n = heatmaps.shape[0], len(table)
        if (
            len(starts) != n
            or not np.array_equal(n_frames, table["n_frames"].to_numpy(np.int64))
            or group["checksums"].shape != (n,)
            or group["crop_boxes"].shape != (n, 4)
            or (
                n
                and (
                    starts[0] < 0
                    or (np.diff(starts) < n_frames[:-1]).any()
                    or starts[-1] + n_frames[-1] > total
                )
            )
        ):
            raise ActrecError(
                f"{path}: clip_start/n_frames/checksums/crop_boxes do not match the clip table. {REMAKE}."
            )
        missing = missing_shards(path, heatmaps.shape[0], heatmaps.shards[0])
        if missing:
            raise ActrecError(
                f"{path / missing[0]} is missing ({len(missing)} shard file(s) missing): the store is damaged. "
                f"{REMAKE}."
            )
        sums = group["checksums"][:]
        return cls(path, group, table, starts, n_frames, _stamp=stamp, checksums=sums)

    def check_unchanged(self) -> None:
        """Raise if the store at self.path is no longer the one opened (replaced or rewritten meanwhile)."""
        check_unchanged(self.path, self._stamp, "a render --overwrite")

    @property
    def attrs(self) -> dict:
        return dict(self.group.attrs)

    @property
    def spec(self) -> RenderSpec:
        """The render spec the store was made with."""
        return RenderSpec.from_attrs(self.group.attrs)

    @property
    def layout(self) -> Layout:
        return stored_layout(self.group.attrs, str(self.path))

    @property
    def heatmaps(self) -> zarr.Array:
        return self.group["heatmaps"]

    @property
    def channels(self) -> list[str]:
        return list(self.group.attrs["channels"])

    @property
    def flip_permutation(self) -> list[int]:
        return list(self.group.attrs["flip_permutation"])

    @property
    def classes(self) -> list[str]:
        return list(self.group.attrs["classes"])

    def __len__(self) -> int:
        return len(self.table)

    def read_clip(self, index: int, frames: np.ndarray | None = None) -> np.ndarray:
        """(T', C, S, S) frames of clip `index`: all, or the given frame indices (any order, repeats allowed).
        Decodes only the chunks that hold the requested frames, and refuses frames that are not the ones
        rendered for this clip (its checksum: see etl.stores.shard_reader). A store replaced since it was opened is
        reported as replaced, not as damaged."""
        start, t = int(self.clip_start[index]), int(self.n_frames[index])
        if self._reader is None:
            self._reader = ShardedFrameReader.open(self.path / "heatmaps", self._stamp, self.checked) or False
        if frames is None:
            frames = np.arange(t)
        frames = np.asarray(frames, np.int64)
        if self._clip_ids is None:
            self._clip_ids = self.table["clip_id"].astype(str).tolist()  # a list: no pandas cost per read
        clip, checksum = self._clip_ids[index], int(self.checksums[index])
        try:
            if self._reader:
                out = self._reader.read_clip(start, t, frames, checksum, clip)
            else:  # zarr (a layout the fast path declines): the whole clip, checked, every time
                whole = self.heatmaps[start : start + t]  # (T, C, S, S)
                if clip_checksum(whole) != checksum:
                    raise ActrecError(
                        f"{self.path}: clip {clip} does not match its checksum from render (shard files swapped "
                        "or a chunk rewritten?): the store is damaged; run `actrec-etl verify` and re-render it"
                    )
                out = whole[frames]
        except ActrecError:
            self.check_unchanged()  # replaced since it was opened: say that, not "damaged"
            raise
        self.check_unchanged()  # after the read: what was read came from the store that was opened
        return out
