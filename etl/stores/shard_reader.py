"""A fast read path for the heatmap store: frames straight from the shard files of a local store.

Why: a training sample needs ~50 frames from a few chunks; through zarr's generic async machinery each chunk read
costs ~0.5 ms of overhead plus a freshly allocated output, several times the decode itself (zstd decodes these
sparse maps at ~20 GB/s). This reader follows the zarr v3 sharding spec for exactly the codec chains the renderer
writes (bytes -> zstd | blosc | nothing -> crc32c, index at the end with crc32c), verifies every checksum, decodes
into a reused buffer and copies only the requested frames. Anything else (another codec chain, a remote store)
is declined and the caller uses zarr. tests/test_shard_reader.py checks it against zarr on every frame.

What identifies a clip's frames (`read_clip`): a chunk's own crc32c only says the chunk is intact, not that it is
this clip's chunk (swapped shard files, or a rewritten chunk whose crc32c was fixed up, are intact). So the first
read of a clip decodes all of its chunks and checks the clip's checksum from render (what `actrec-etl verify`
checks); the chunks' stored crc32c values are then remembered (`CheckedChunks`, shared by a loader's forked
workers, so once per run), and every later read of a chunk compares its 4-byte crc32c with them, ~1 us a sample
(docs/benchmarks.md, "What checking a clip's frames costs").
"""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path

import crc32c
import numpy as np
from numcodecs import blosc
from numcodecs.zstd import Zstd

from etl.common.errors import ActrecError
from etl.stores.storeio import replaced_error, store_stamp

_EMPTY = np.uint64(2**64 - 1)  # index entry of a chunk that was never written (all fill value)
_ZSTD = Zstd()


def _decoder(codecs: list[dict]):
    """The decode function for an inner codec chain we wrote, or None if it is not one of ours."""
    names = [c["name"] for c in codecs]
    if names[:1] != ["bytes"] or names[-1:] != ["crc32c"]:
        return None
    endian = codecs[0].get("configuration", {}).get("endian", "little")
    if endian != "little":
        return None
    middle = names[1:-1]
    if middle == []:
        return lambda src, dst: dst.__setitem__(slice(None), np.frombuffer(src, np.uint8))
    if middle == ["zstd"]:
        return lambda src, dst: _ZSTD.decode(src, out=dst)
    if middle == ["blosc"]:
        return lambda src, dst: blosc.decompress(src, dst)
    return None


class CheckedChunks:
    """The chunks whose clip matched its checksum, with their stored crc32c: one uint64 per chunk, (1 << 32) |
    crc32c, 0 = not checked yet (one aligned 8-byte store: a concurrent reader never sees half of it). Made with
    shared=True before the DataLoader forks its workers, it is one anonymous shared mapping, so a clip checked by
    one worker is not checked again by the others; a pickled copy (spawned workers) is private."""

    def __init__(self, n_chunks: int, shared: bool = False):
        if shared:  # MAP_SHARED | MAP_ANONYMOUS: the same pages in the children forked after this
            self._mapping = mmap.mmap(-1, max(n_chunks, 1) * 8)
            self._words = np.frombuffer(self._mapping, np.uint64)[:n_chunks]  # (n_chunks,)
        else:
            self._words = np.zeros(n_chunks, np.uint64)  # (n_chunks,)

    @classmethod
    def shared_for(cls, array_dir: str | Path) -> CheckedChunks | None:
        """A shared table for the array at `array_dir`, or None where the fast reader declines it."""
        reader = ShardedFrameReader.open(array_dir)
        return None if reader is None else cls(reader.n_chunks, shared=True)

    def __reduce__(self):
        return _private_copy, (np.array(self._words),)

    def __len__(self) -> int:
        return len(self._words)

    def get(self, chunk: int) -> int | None:
        word = int(self._words[chunk])
        return word & 0xFFFFFFFF if word else None

    def add(self, stored: dict[int, int]) -> None:
        """Record a checked clip's chunks {chunk: crc32c}, its first chunk (what marks the clip checked) last."""
        for chunk, crc in sorted(stored.items(), reverse=True):
            self._words[chunk] = (1 << 32) | crc

    def clear(self) -> None:
        self._words[:] = 0


def _private_copy(words: np.ndarray) -> CheckedChunks:
    checked = CheckedChunks(0)
    checked._words = words
    return checked


class ShardedFrameReader:
    """Reads whole-frame rows of a local 4-D array sharded along its first axis only."""

    def __init__(
        self,
        array_dir: Path,
        shape,
        dtype,
        shard_frames: int,
        chunk_frames: int,
        decode,
        stamp: tuple = (),
        checked: CheckedChunks | None = None,
    ):
        self.array_dir = array_dir
        self.store = array_dir.parent
        self._stamp = stamp or store_stamp(self.store)  # the store this reader's caches describe
        self._prefix = f"{array_dir}/c/"  # shard files are c/<i>/0/0/0 (default key encoding, "/" separator)
        self.frame_shape = tuple(shape[1:])
        self.dtype = np.dtype(dtype)
        self.shard_frames, self.chunk_frames = shard_frames, chunk_frames
        self.chunks_per_shard = shard_frames // chunk_frames
        self._decode = decode
        self._index: dict[int, np.ndarray | None] = {}  # shard -> (chunks_per_shard, 2) [offset, nbytes]
        self.n_chunks = -(-int(shape[0]) // chunk_frames)
        # a table made for another store (replaced meanwhile: the stamp check reports that) is not used
        fits = checked is not None and len(checked) == self.n_chunks
        self._checked = checked if fits else CheckedChunks(self.n_chunks)
        self._scratch = np.empty((chunk_frames, *self.frame_shape), self.dtype)  # (Fb, C, S, S), reused
        self._scratch_bytes = self._scratch.reshape(-1).view(np.uint8)

    @classmethod
    def open(
        cls, array_dir: str | Path, stamp: tuple = (), checked: CheckedChunks | None = None
    ) -> ShardedFrameReader | None:
        """A reader, or None when the array is not laid out the way this fast path understands. `stamp`:
        the store's `store_stamp` when its caller opened it (default: now); `checked`: a table shared with
        other readers of the same store (default: this reader's own)."""
        array_dir = Path(array_dir)
        try:
            meta = json.loads((array_dir / "zarr.json").read_text())
        except (OSError, ValueError):
            return None
        shape = meta["shape"]
        codecs = meta.get("codecs", [])
        key_enc = meta.get("chunk_key_encoding", {})
        if (
            len(shape) != 4
            or len(codecs) != 1
            or codecs[0]["name"] != "sharding_indexed"
            or key_enc.get("name") != "default"
            or key_enc.get("configuration", {}).get("separator", "/") != "/"
            or meta.get("fill_value") not in (0, 0.0)
            or meta["data_type"] not in ("uint8", "float16")
        ):
            return None
        shard_shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
        conf = codecs[0]["configuration"]
        chunk_shape = conf["chunk_shape"]
        index_ok = [c["name"] for c in conf.get("index_codecs", [])] == ["bytes", "crc32c"]
        if (
            list(shard_shape[1:]) != list(shape[1:])
            or list(chunk_shape[1:]) != list(shape[1:])
            or shard_shape[0] % chunk_shape[0]
            or conf.get("index_location", "end") != "end"
            or not index_ok
        ):
            return None
        decode = _decoder(conf["codecs"])
        if decode is None:
            return None
        return cls(
            array_dir,
            shape,
            meta["data_type"],
            shard_frames=shard_shape[0],
            chunk_frames=chunk_shape[0],
            decode=decode,
            stamp=stamp,
            checked=checked,
        )

    def _shard_path(self, shard: int) -> str:
        return f"{self._prefix}{shard}/0/0/0"

    def _shard_index(self, shard: int, fd: int) -> np.ndarray:
        index = self._index.get(shard)
        if index is None:
            n = self.chunks_per_shard
            size = os.fstat(fd).st_size
            if size < n * 16 + 4:
                raise self._damaged(
                    f"shard {self._shard_path(shard)} is truncated ({size} bytes): the store is damaged "
                    "(run `actrec-etl verify`)"
                )
            raw = os.pread(fd, n * 16 + 4, size - (n * 16 + 4))
            body, stored = raw[:-4], int.from_bytes(raw[-4:], "little")
            if crc32c.crc32c(body) != stored:
                raise self._damaged(
                    f"shard index of {self._shard_path(shard)} fails its checksum: the store is "
                    "damaged (run `actrec-etl verify`)"
                )
            index = np.frombuffer(body, "<u8").reshape(n, 2)
            self._index[shard] = index
        return index

    def read(self, frames: np.ndarray) -> np.ndarray:
        """Rows `frames` (global frame indices, any order, repeats allowed) -> (K, C, S, S) array. Each chunk's
        crc32c is checked, not which clip it belongs to (`read_clip` checks that)."""
        return self._gather(frames, lambda chunk, stored: None)

    def read_clip(
        self, start: int, n_frames: int, frames: np.ndarray, checksum: int, clip: str
    ) -> np.ndarray:
        """Frames `frames` (clip-relative, in [0, n_frames), any order, repeats allowed) of the clip stored in
        rows [start, start + n_frames) -> (K, C, S, S), refused unless they are the frames rendered for it:
        its first read here checks the clip's `checksum`, later reads the chunks' crc32c (module docstring)."""
        frames = np.asarray(frames, np.int64).ravel()
        if self._checked.get(start // self.chunk_frames) is None:
            return self._read_checking(start, n_frames, frames, checksum, clip)

        unseen: list[int] = []

        def same_chunk(chunk: int, stored: int) -> None:
            expected = self._checked.get(chunk)
            if expected is None:
                unseen.append(chunk)
            elif expected != stored:
                raise self._damaged(
                    f"{self.store}: clip {clip} reads chunk {chunk % self.chunks_per_shard} of "
                    f"{self._shard_path(chunk // self.chunks_per_shard)}, which is not the chunk its checksum "
                    "was checked on earlier (a shard file swapped or rewritten meanwhile): the store is damaged; "
                    "run `actrec-etl verify` and re-render it"
                )

        out = self._gather(start + frames, same_chunk)
        if unseen:  # another worker's check of this clip is not all visible here yet: check it here
            return self._read_checking(start, n_frames, frames, checksum, clip)
        return out

    def _read_checking(self, start: int, n_frames: int, frames: np.ndarray, checksum: int, clip: str):
        """read_clip's first read of a clip: decode every chunk of it in order, crc32c its frames as rendered
        (the padding after its last frame excluded) and gather the requested frames on the way."""
        order = np.argsort(frames, kind="stable")
        in_order = bool((order == np.arange(len(frames))).all())  # the usual case: no reordering copy
        sorted_frames = (frames if in_order else frames[order]) + start
        out = np.empty((len(frames), *self.frame_shape), self.dtype)  # (K, C, S, S) in sorted order
        fb, frame_bytes = self.chunk_frames, self._scratch[0].nbytes
        first, last = start // fb, (start + n_frames - 1) // fb
        crc, stored, a = 0, {}, 0
        for chunk in range(first, last + 1):
            stored[chunk] = self._load_chunk(chunk)
            valid = min(fb, start + n_frames - chunk * fb)  # frames of the clip in this chunk
            crc = crc32c.crc32c(self._scratch_bytes[: valid * frame_bytes], crc)
            b = int(np.searchsorted(sorted_frames, (chunk + 1) * fb))
            if b > a:
                np.take(self._scratch, sorted_frames[a:b] - chunk * fb, axis=0, out=out[a:b], mode="clip")
            a = b
        if crc != checksum:
            raise self._damaged(
                f"{self.store}: clip {clip} (frames {start}-{start + n_frames} of heatmaps) does not match its "
                "checksum from render (shard files swapped or a chunk rewritten?): the store is damaged; run "
                "`actrec-etl verify` and re-render it"
            )
        self._checked.add(stored)
        if in_order:
            return out
        result = np.empty_like(out)
        result[order] = out
        return result

    def _gather(self, frames: np.ndarray, check) -> np.ndarray:
        """Rows `frames` (global) -> (K, C, S, S); check(chunk, stored crc32c) runs on every chunk decoded."""
        frames = np.asarray(frames, np.int64).ravel()
        order = np.argsort(frames, kind="stable")
        in_order = bool((order == np.arange(len(frames))).all())
        sorted_frames = frames if in_order else frames[order]
        out = np.empty((len(frames), *self.frame_shape), self.dtype)
        # Sorted frames of one chunk are a contiguous run of rows: gather straight into that slice of `out`.
        chunk_of = sorted_frames // self.chunk_frames
        bounds = np.flatnonzero(np.diff(chunk_of)) + 1
        for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(frames)], strict=True):
            chunk = int(chunk_of[a])
            check(chunk, self._load_chunk(chunk))
            # mode="clip": with the default mode numpy buffers `out` (an extra copy); indices are in range here
            np.take(
                self._scratch,
                sorted_frames[a:b] - chunk * self.chunk_frames,
                axis=0,
                out=out[a:b],
                mode="clip",
            )
        if in_order:
            return out
        result = np.empty_like(out)
        result[order] = out
        return result

    def _load_chunk(self, chunk: int) -> int:
        """Decode chunk `chunk` into the scratch buffer; returns its stored crc32c (of the encoded bytes)."""
        shard, inner = divmod(chunk, self.chunks_per_shard)
        path = self._shard_path(shard)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            # render writes every shard (padding too): a missing one is lost data, never zeros
            raise self._damaged(
                f"shard {path} is missing: the store is damaged (run `actrec-etl verify`)"
            ) from None
        try:
            offset, nbytes = self._shard_index(shard, fd)[inner]
            if offset == _EMPTY and nbytes == _EMPTY:
                raise self._damaged(
                    f"chunk {inner} of {path} was never written: the store is damaged (run `actrec-etl verify`)"
                )
            raw = os.pread(fd, int(nbytes), int(offset))
        finally:
            os.close(fd)
        payload, stored = memoryview(raw)[:-4], int.from_bytes(raw[-4:], "little")
        if crc32c.crc32c(payload) != stored:
            raise self._damaged(
                f"chunk {inner} of {path} fails its checksum: the store is damaged (run `actrec-etl verify`)"
            )
        self._decode(payload, self._scratch_bytes)
        return stored

    def _damaged(self, message: str) -> ActrecError:
        """The error for what looks like damage, unless the store was replaced since this reader opened it
        (its cached shard indexes and checked chunks describe the old store): then it says so."""
        if store_stamp(self.store) != self._stamp:
            return replaced_error(self.store, "reader")
        return ActrecError(message)
