"""`actrec-etl render`: keypoint store -> heatmap store, once, in parallel, resumable.

Work is split into partitions that own whole shards (see heatmap_store.plan_layout). Each partition is rendered
by `render_partition`, a pure function of (keypoint store, plan, spec) that writes its frames and then a done
marker (its bounds, boxes, checksums and the crc32c of each shard file it wrote, itself checksummed); re-running
after a crash (even SIGKILL) or Ctrl-C keeps the partitions whose marker and shards still check out and redoes
the rest, which rewrites their shards completely, so the result equals an uninterrupted run. The keypoint store
is read under a shared lock and its identity is checked again before the result is published. Parallelism is one level: partitions run
concurrently (threads or dask.distributed workers), each kernel call on one numba thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import crc32c
import numpy as np
import zarr

from etl.common.errors import ActrecError, Interrupted
from etl.common.locks import exclusive_lock, shared_lock
from etl.heatmaps.clip import clip_box, render_frames
from etl.heatmaps.spec import RenderSpec
from etl.stores.cliptable import CLIPS_FILE
from etl.stores.heatmap_store import (
    Partition,
    create_store,
    finalise_store,
    plan_layout,
    shard_key,
)
from etl.stores.keypoint_store import KeypointStore
from etl.stores.storeio import SEAL_KEY, check_output, disk_errors, partial_path, publish, recover_publish

PROGRESS_DIR = "_progress"  # done markers of finished partitions, inside the temporary store
PIECE_SHARDS = 1  # a partition is rendered and written this many shards at a time: the render's memory bound


@dataclass
class RenderReport:
    out: Path
    n_clips: int
    n_partitions: int
    resumed_partitions: int  # finished by an earlier, interrupted run
    n_frames: int
    bytes_stored: int
    redone_partitions: int = 0  # had a done marker that did not check out (edited, or its shards damaged)


def render(
    keypoints: Path,
    out: Path,
    spec: RenderSpec,
    *,
    threads: int | None = None,
    scheduler: str = "threads",
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> RenderReport:
    """Render every clip of a keypoint store into a heatmap store at `out`.

    scheduler: "threads" (this machine, `threads` partitions at a time) or a dask.distributed scheduler
    address such as "tcp://host:8786" (workers must see both stores at the same paths)."""
    spec.check()
    keypoints, out = Path(keypoints), Path(out)
    _start_numba_threads()
    # The input cannot be re-ingested while we read it (ingest refuses), and two renders never share `out`.
    with shared_lock(keypoints, "render"), exclusive_lock(out, "render"):
        kp = KeypointStore.open(keypoints)
        identity = _input_content(keypoints)
        starts, parts, total = plan_layout(
            kp.table["n_frames"].to_numpy(), spec.frames_per_chunk, spec.chunks_per_shard
        )
        fingerprint = spec.fingerprint(kp.attrs["content_hash"])
        recover_publish(out)
        check_output(out, overwrite=overwrite)  # under the lock: a render that just finished counts
        tmp = partial_path(out)
        kept = f"the finished partitions are kept in {tmp}: free space and re-run the same command to resume"
        with disk_errors(tmp, f"render stopped; {kept}"):
            resumable = _is_resumable(tmp, fingerprint)
            if not resumable:
                if tmp.exists():
                    shutil.rmtree(tmp)
                create_store(tmp, kp, spec, starts, total)
                (tmp / PROGRESS_DIR).mkdir()
            done, redone = _checked_done_partitions(tmp, parts, fingerprint)
            todo = [p for p in parts if p.index not in done]
            if on_progress:
                on_progress(len(done), len(parts))
            try:
                _run_partitions(
                    todo,
                    keypoints.resolve(),
                    tmp.resolve(),
                    spec,
                    threads,
                    scheduler,
                    lambda n: on_progress(len(done) + n, len(parts)) if on_progress else None,
                )
            except KeyboardInterrupt:
                n_done = len(_marker_files(tmp))
                raise Interrupted(
                    f"render interrupted: {n_done} of {len(parts)} partitions are done and kept in {tmp}; "
                    "re-run the same command to resume"
                ) from None
            except Exception as exc:
                # nothing to resume from: a failed render leaves no x.zarr.partial behind (finished partitions
                # stay, for a re-run to resume once the cause is fixed; the error says what failed)
                if not isinstance(exc, OSError) and not _marker_files(tmp):  # disk errors: disk_errors says
                    shutil.rmtree(tmp, ignore_errors=True)
                raise
            if _input_content(keypoints) != identity:
                shutil.rmtree(tmp, ignore_errors=True)  # rendered from the old input: no use to a resume
                raise ActrecError(
                    f"{keypoints} changed while rendering from it (re-ingested?): nothing was published; "
                    "run the render again"
                )
            _finalise(tmp, kp, parts)
            publish(tmp, out)
    stored = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    n_frames = int(kp.table["n_frames"].sum())
    return RenderReport(out, len(kp), len(parts), len(done), n_frames, stored, redone)


def _start_numba_threads() -> None:
    """Start numba's threading layer from this (the main) thread. Why: TBB started first from a pool thread
    queues a task in that thread's arena; on a one-CPU machine no TBB worker exists to run it, and numba's
    unload at interpreter exit waits for it forever (a render pinned with `taskset -c 0` never exited)."""
    import numba

    numba.get_num_threads()


def _input_content(keypoints: Path) -> tuple:
    """What the render read: the keypoint store's content hash and the sha256 of its clip table."""
    try:
        attrs = dict(zarr.open_group(str(keypoints), mode="r").attrs)
    except Exception:
        return ()
    return (attrs.get("content_hash"), attrs.get(SEAL_KEY, {}).get("files", {}).get(CLIPS_FILE))


def _is_resumable(tmp: Path, fingerprint: str) -> bool:
    if not (tmp / "zarr.json").exists():
        return False
    try:
        attrs = zarr.open_group(str(tmp), mode="r").attrs
    except Exception:
        return False  # a run killed while creating the arrays: start over
    return attrs.get("fingerprint") == fingerprint and (tmp / PROGRESS_DIR).is_dir()


def _marker_files(tmp: Path) -> list[Path]:
    return sorted((tmp / PROGRESS_DIR).glob("*.json"))


def _checked_done_partitions(tmp: Path, parts: list[Partition], fingerprint: str) -> tuple[set[int], int]:
    """Partitions finished by an earlier run whose marker and shard files still check out; a marker that does
    not (edited, truncated, its shards deleted or changed) is removed so the partition is rendered again.
    Returns (done indices, number of markers removed)."""
    by_index = {p.index: p for p in parts}
    done, removed = set(), 0
    for path in _marker_files(tmp):
        part = by_index.get(int(path.stem)) if path.stem.isdigit() else None
        if part is not None and _read_marker(tmp, part, fingerprint) is not None:
            done.add(part.index)
        else:
            path.unlink(missing_ok=True)
            removed += 1
    for stray in (tmp / PROGRESS_DIR).glob("*.tmp"):
        stray.unlink(missing_ok=True)  # a marker write killed half-way
    return done, removed


def _partition_shards(part: Partition, shard_frames: int) -> list[int]:
    return list(range(part.frame_lo // shard_frames, -(-part.frame_hi // shard_frames)))


def _file_crc(path: Path) -> int:
    return crc32c.crc32c(path.read_bytes())


def _marker_digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _read_marker(tmp: Path, part: Partition, fingerprint: str) -> dict | None:
    """The marker of `part` if it is whole, was written for this plan, and its shard files are as written."""
    try:
        payload = json.loads((tmp / PROGRESS_DIR / f"{part.index}.json").read_text())
        digest = payload.pop("digest")
        n = part.clip_hi - part.clip_lo
        if (
            digest != _marker_digest(payload)
            or payload["fingerprint"] != fingerprint
            or payload["partition"] != asdict(part)
            or len(payload["boxes"]) != n
            or len(payload["checksums"]) != n
        ):
            return None
        for key, crc in payload["shards"].items():
            f = tmp / key
            if not f.is_file() or _file_crc(f) != crc:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return payload


def _run_partitions(
    todo: list[Partition],
    kp_path: Path,
    hm_path: Path,
    spec: RenderSpec,
    threads: int | None,
    scheduler: str,
    advance: Callable[[int], None],
) -> None:
    if not todo:
        return
    if scheduler == "threads":
        workers = threads or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(render_partition, kp_path, hm_path, part, spec) for part in todo]
            try:
                for n, fut in enumerate(as_completed(futures), 1):
                    fut.result()
                    advance(n)
            except BaseException:
                # Ctrl-C or a failed partition: drop what has not started; the pool's exit waits only for the
                # partitions running now (each writes whole shards, then its marker).
                for fut in futures:
                    fut.cancel()
                raise
        return
    _run_distributed(todo, kp_path, hm_path, spec, scheduler, advance)


def _run_distributed(todo, kp_path, hm_path, spec, address: str, advance) -> None:
    try:
        from distributed import Client
        from distributed import as_completed as dist_as_completed
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise ActrecError("--scheduler ADDRESS needs dask.distributed (pip install distributed)") from exc
    try:
        client = Client(address, timeout="10s")
    except OSError as exc:
        raise ActrecError(f"cannot reach the dask scheduler at {address}: {exc}") from exc
    with client:
        client.run(_start_numba_threads)  # on each worker's event-loop thread: the same exit hang otherwise
        futures = client.map(
            render_partition,
            [kp_path] * len(todo),
            [hm_path] * len(todo),
            todo,
            [spec] * len(todo),
            pure=False,
        )
        try:
            for n, fut in enumerate(dist_as_completed(futures), 1):
                fut.result()
                advance(n)
        except BaseException:
            client.cancel(futures)
            raise


@lru_cache(maxsize=4)
def _open_keypoints(path: Path, content_hash: str) -> KeypointStore:
    """Cached per process (dask workers live long): keyed by content, so a store re-ingested at the same path
    is opened afresh."""
    kp = KeypointStore.open(path)
    if kp.attrs["content_hash"] != content_hash:
        raise ActrecError(f"{path} changed while rendering from it (re-ingested?): run the render again")
    return kp


def _writing_empty_chunks(array: zarr.Array) -> zarr.Array:
    """The array with write_empty_chunks on. zarr < 3.1.6 (the newest for numpy < 2, which the video extra's
    mediapipe needs) has no Array.with_config: the same copy is built from the array's metadata there."""
    if hasattr(array, "with_config"):
        return array.with_config({"write_empty_chunks": True})
    from zarr.core.array import AsyncArray

    return zarr.Array(AsyncArray(array.metadata, array.store_path, config={"write_empty_chunks": True}))


def render_partition(kp_path: Path, hm_path: Path, part: Partition, spec: RenderSpec) -> int:
    """Render clips [clip_lo, clip_hi) into frames [frame_lo, frame_hi) of the temporary store, then record
    the partition as done. Runs in any thread or process; returns the number of frames written.

    Memory is bounded by PIECE_SHARDS shards whatever the clip lengths: the frames are rendered and written
    one piece of whole shards at a time (a long clip's partition spans many shards). Each clip's crop box is
    computed from the whole clip first (frames are independent given the box) and its checksum is extended
    piece by piece, so the stored bytes, boxes and checksums equal a render of the partition in one piece."""
    from etl.heatmaps.kernels import set_threads

    set_threads(1)  # one level of parallelism: partitions are the parallel unit
    group = zarr.open_group(str(hm_path), mode="r+")
    kp = _open_keypoints(kp_path, group.attrs["keypoints"]["content_hash"])
    starts = group["clip_start"][part.clip_lo : part.clip_hi]
    # zarr's scan for all-zero chunks costs 3x the encode here; empty chunks compress to a few bytes. Per-array
    # config, not zarr.config.set: that is process-global and partitions run in parallel threads.
    heatmaps = _writing_empty_chunks(group["heatmaps"])
    piece = heatmaps.shards[0] * PIECE_SHARDS  # frames per piece; partitions start on a shard boundary
    frame_shape = heatmaps.shape[1:]  # (C, S, S)
    frame_bytes = int(np.prod(frame_shape)) * np.dtype(spec.dtype).itemsize
    with _one_line_out_of_memory(kp, part, starts, frame_bytes) as where:
        clips = _PartitionClips(kp, part, starts, spec)
        for lo in range(part.frame_lo, part.frame_hi, piece):
            hi = min(lo + piece, part.frame_hi)
            where[:] = [lo, hi]
            buf = np.zeros((hi - lo, *frame_shape), dtype=spec.dtype)  # (F_piece, C, S, S)
            clips.render_into(buf, lo)  # gaps between clips (chunk padding) stay zero
            heatmaps[lo:hi] = buf
            del buf  # before the next piece is allocated: one piece in memory at a time
    shard_frames = heatmaps.shards[0]
    shards = {shard_key(i): _file_crc(hm_path / shard_key(i)) for i in _partition_shards(part, shard_frames)}
    payload = {
        "partition": asdict(part),
        "fingerprint": group.attrs["fingerprint"],
        "boxes": clips.boxes,
        "checksums": clips.checksums,
        "shards": shards,
    }
    _write_marker(
        hm_path / PROGRESS_DIR / f"{part.index}.json", {**payload, "digest": _marker_digest(payload)}
    )
    return part.frame_hi - part.frame_lo


@contextmanager
def _one_line_out_of_memory(kp: KeypointStore, part: Partition, starts: np.ndarray, frame_bytes: int):
    """Turn a MemoryError into one line naming the clips of the frames [lo, hi) being rendered. The caller keeps
    `where` = [lo, hi] up to date (empty while the partition's keypoints are read). starts (n_part,): the
    partition's clip starts on the frame axis; frame_bytes: one stored frame (C x S x S values)."""
    where: list[int] = []
    try:
        yield where
    except MemoryError:
        lo, hi = where or (part.frame_lo, part.frame_hi)
        ends = starts + kp.table["n_frames"].to_numpy()[part.clip_lo : part.clip_hi]
        hit = np.flatnonzero((starts < hi) & (ends > lo)) + part.clip_lo
        ids = ", ".join(str(kp.table["clip_id"].iat[i]) for i in hit) or "(chunk padding)"
        raise ActrecError(
            f"out of memory rendering clip {ids} of {kp.path}: its frames {lo}-{hi} in the heatmap store take "
            f"{(hi - lo) * frame_bytes / 2**20:.0f} MiB (for each partition rendered at once); free memory, or "
            "render with fewer --threads, or a smaller --chunks-per-shard, --frames-per-chunk or --size"
        ) from None


class _PartitionClips:
    """The clips of one partition, rendered into pieces of its frame range in order. Holds each clip's
    keypoints (small: M x T x V x 2 floats), crop box (of the whole clip) and running checksum."""

    def __init__(self, kp: KeypointStore, part: Partition, starts: np.ndarray, spec: RenderSpec):
        self.kp, self.spec, self.layout = kp, spec, kp.layout
        self.poses = kp.read_range(part.clip_lo, part.clip_hi)  # [(keypoints (M, T, V, 2), scores (M, T, V))]
        self.rows = range(part.clip_lo, part.clip_hi)
        self.starts = [int(x) for x in starts]  # first frame of each clip on the store's frame axis
        table = kp.table
        self.boxes: list[list[float]] = []
        for row, (kps, scores) in zip(self.rows, self.poses, strict=True):
            img_hw = (int(table["img_h"].iat[row]), int(table["img_w"].iat[row]))
            self.boxes.append([float(x) for x in clip_box(kps, scores, img_hw, spec)])
        self.checksums = [0] * len(self.poses)  # clip_checksum of the frames rendered so far (crc32c chains)

    def _overlaps(self, lo: int, hi: int):
        """(clip index, first, end) frame ranges, on the store's frame axis, of the clips in [lo, hi)."""
        for i, (kps, _) in enumerate(self.poses):
            a, b = max(self.starts[i], lo), min(self.starts[i] + kps.shape[1], hi)
            if a < b:
                yield i, a, b

    def clip_ids(self, lo: int, hi: int) -> str:
        ids = [str(self.kp.table["clip_id"].iat[self.rows[i]]) for i, _, _ in self._overlaps(lo, hi)]
        return ", ".join(ids) or "(none: chunk padding)"

    def render_into(self, buf: np.ndarray, lo: int) -> None:
        """Render the clips' frames that fall in [lo, lo + len(buf)) into buf (F_piece, C, S, S), zero-filled."""
        for i, a, b in self._overlaps(lo, lo + len(buf)):
            kps, scores = self.poses[i]
            t0, t1 = a - self.starts[i], b - self.starts[i]  # the clip's own frame numbers
            view = buf[a - lo : b - lo]  # (t1 - t0, C, S, S), C-contiguous
            box = np.asarray(self.boxes[i])
            render_frames(kps[:, t0:t1], scores[:, t0:t1], box, self.spec, self.layout, view)
            # clip_checksum(frames) is the crc32c of the clip's bytes; frames are rendered in order, so chaining
            # the pieces' crc32c gives the same value as clip_checksum of the whole clip
            self.checksums[i] = crc32c.crc32c(view, self.checksums[i])


def _write_marker(path: Path, payload: dict) -> None:
    # Written after the frames, and atomically: a marker exists only for a partition that is on disk.
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _finalise(tmp: Path, kp: KeypointStore, parts: list[Partition]) -> None:
    """Collect the markers into crop boxes and checksums, then let the store finish itself (complete=True)."""
    n = len(kp)
    boxes = np.zeros((n, 4), np.float64)
    sums = np.zeros(n, np.uint32)
    fingerprint = zarr.open_group(str(tmp), mode="r").attrs["fingerprint"]
    for part in parts:
        marker = _read_marker(tmp, part, fingerprint)
        if (
            marker is None
        ):  # changed since this run checked or wrote it: never publish what we cannot vouch for
            raise ActrecError(
                f"{tmp / PROGRESS_DIR / f'{part.index}.json'} or its shards changed during the render: "
                "run the render again (that partition is redone)"
            )
        boxes[part.clip_lo : part.clip_hi] = marker["boxes"]
        sums[part.clip_lo : part.clip_hi] = marker["checksums"]
    finalise_store(tmp, kp, boxes, sums, scratch=tmp / PROGRESS_DIR)
