"""`actrec-etl render`: keypoint store -> heatmap store, once, in parallel, resumable.

Work is split into partitions that own whole shards (see heatmap_store.plan_layout). Each partition is rendered
by `render_partition`, a pure function of (keypoint store, plan, params) that writes its frames and then a done
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
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import crc32c
import numpy as np
import zarr

import etl.numba_setup  # noqa: F401  (sets the threading layer read below, before numba loads)
from etl.cliptable import CLIPS_FILE, REJECTS_FILE, read_rejects, table_attrs, write_table
from etl.errors import ActrecError, Interrupted
from etl.heatmap_store import (
    DATA_ARRAYS,
    DEFAULT_LEVEL,
    DTYPES,
    FORMAT_VERSION,
    KIND,
    UINT8_SCALE,
    Partition,
    clip_checksum,
    compressors,
    plan_layout,
    shard_key,
)
from etl.keypoint_store import KeypointStore
from etl.render_params import RenderSettings
from etl.skeleton import Layout
from etl.storeio import (
    SEAL_KEY,
    check_output,
    disk_errors,
    exclusive_lock,
    partial_path,
    publish,
    recover_publish,
    seal,
    shared_lock,
)

PROGRESS_DIR = "_progress"  # done markers of finished partitions, inside the temporary store
# Without TBB (a broken install), numba's fallback layer aborts when two threads run kernels at once: serialise.
_KERNEL_LOCK = threading.Lock() if os.environ.get("NUMBA_THREADING_LAYER") != "tbb" else nullcontext()


@dataclass(frozen=True)
class RenderParams(RenderSettings):
    """RenderSettings (the fields and their defaults) checked, with the codec's default level filled in."""

    def __post_init__(self) -> None:
        if self.level is None:
            object.__setattr__(self, "level", DEFAULT_LEVEL.get(self.codec, 0))

    def check(self) -> None:
        if self.dtype not in DTYPES:
            raise ActrecError(f"--dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if not 8 <= self.size <= 1024:
            raise ActrecError(f"--size {self.size} is out of range (8-1024 pixels)")
        if self.sigma <= 0:
            raise ActrecError(f"--sigma must be positive, not {self.sigma}")
        if self.frames_per_chunk < 1 or self.chunks_per_shard < 1:
            raise ActrecError("--frames-per-chunk and --chunks-per-shard must be >= 1")
        compressors(self.codec, self.level)

    def fingerprint(self, keypoints_hash: str) -> str:
        """Identity of a render: a partial store is resumed only by a run with the same fingerprint."""
        text = json.dumps(
            {"params": asdict(self), "keypoints": keypoints_hash, "v": FORMAT_VERSION}, sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    params: RenderParams,
    *,
    threads: int | None = None,
    scheduler: str = "threads",
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> RenderReport:
    """Render every clip of a keypoint store into a heatmap store at `out`.

    scheduler: "threads" (this machine, `threads` partitions at a time) or a dask.distributed scheduler
    address such as "tcp://host:8786" (workers must see both stores at the same paths)."""
    params.check()
    keypoints, out = Path(keypoints), Path(out)
    _start_numba_threads()
    # The input cannot be re-ingested while we read it (ingest refuses), and two renders never share `out`.
    with shared_lock(keypoints, "render"), exclusive_lock(out, "render"):
        kp = KeypointStore.open(keypoints)
        identity = _input_identity(keypoints)
        layout = kp.layout
        channel_names = layout.channel_names(params.channels)
        starts, parts, total = plan_layout(
            kp.table["n_frames"].to_numpy(), params.frames_per_chunk, params.chunks_per_shard
        )
        fingerprint = params.fingerprint(kp.attrs["content_hash"])
        recover_publish(out)
        check_output(out, overwrite=overwrite)  # under the lock: a render that just finished counts
        tmp = partial_path(out)
        kept = f"the finished partitions are kept in {tmp}: free space and re-run the same command to resume"
        with disk_errors(tmp, f"render stopped; {kept}"):
            resumable = _is_resumable(tmp, fingerprint)
            if not resumable:
                if tmp.exists():
                    shutil.rmtree(tmp)
                _create_arrays(tmp, kp, params, channel_names, starts, total, fingerprint)
            done, redone = _checked_done_partitions(tmp, parts, fingerprint)
            todo = [p for p in parts if p.index not in done]
            if on_progress:
                on_progress(len(done), len(parts))
            try:
                _run_partitions(
                    todo,
                    keypoints.resolve(),
                    tmp.resolve(),
                    params,
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
            if _input_identity(keypoints) != identity:
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


def _input_identity(keypoints: Path) -> tuple:
    """What the render read: the keypoint store's content hash and the sha256 of its clip table."""
    try:
        attrs = dict(zarr.open_group(str(keypoints), mode="r").attrs)
    except Exception:
        return ()
    return (attrs.get("content_hash"), attrs.get(SEAL_KEY, {}).get("files", {}).get(CLIPS_FILE))


def _create_arrays(
    tmp: Path,
    kp: KeypointStore,
    params: RenderParams,
    channel_names: list[str],
    starts: np.ndarray,
    total: int,
    fingerprint: str,
) -> None:
    """Create every array up front (the plan is fixed), so partitions only ever write into them."""
    layout = kp.layout
    s, c, fb = params.size, len(channel_names), params.frames_per_chunk
    group = zarr.open_group(str(tmp), mode="w")
    group.create_array(
        "heatmaps",
        shape=(total, c, s, s),
        dtype=params.dtype,
        chunks=(fb, c, s, s),
        shards=(fb * params.chunks_per_shard, c, s, s),
        compressors=compressors(params.codec, params.level),
        fill_value=0,
        dimension_names=("frame", "channel", "y", "x"),
    )
    group.create_array("clip_start", data=starts, dimension_names=("clip",))
    group.create_array("n_frames", data=kp.table["n_frames"].to_numpy(np.int64), dimension_names=("clip",))
    quant = (
        {"scale": UINT8_SCALE, "max_abs_error": 1 / (2 * UINT8_SCALE), "rule": "q = floor(v * 255 + 0.5)"}
        if params.dtype == "uint8"
        else {"scale": 1, "max_abs_error": "float16 rounding (~5e-4 at 1.0)"}
    )
    group.attrs.update(
        {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            "complete": False,
            "fingerprint": fingerprint,
            "layout": layout.name,
            "channel_preset": params.channels,
            "channels": channel_names,
            "flip_permutation": layout.channel_flip(params.channels),
            "limbs": [list(x) for x in layout.limbs],
            "classes": kp.classes,
            "n_clips": len(kp),
            "sigma": params.sigma,
            "size": params.size,
            "padding": params.padding,
            "eps": params.eps,
            "dtype": params.dtype,
            "quantisation": quant,
            "render": asdict(params),
            "keypoints": {
                "path": str(kp.path),
                "content_hash": kp.attrs["content_hash"],
                "format_version": kp.attrs["format_version"],
            },
        }
    )
    (tmp / PROGRESS_DIR).mkdir()


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
    params: RenderParams,
    threads: int | None,
    scheduler: str,
    advance: Callable[[int], None],
) -> None:
    if not todo:
        return
    if scheduler == "threads":
        workers = threads or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(render_partition, kp_path, hm_path, part, params) for part in todo]
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
    _run_distributed(todo, kp_path, hm_path, params, scheduler, advance)


def _run_distributed(todo, kp_path, hm_path, params, address: str, advance) -> None:
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
            [params] * len(todo),
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


def render_partition(kp_path: Path, hm_path: Path, part: Partition, params: RenderParams) -> int:
    """Render clips [clip_lo, clip_hi) into frames [frame_lo, frame_hi) of the temporary store, then record
    the partition as done. Runs in any thread or process; returns the number of frames written."""
    from etl.kernels import set_threads

    set_threads(1)  # one level of parallelism: partitions are the parallel unit
    group = zarr.open_group(str(hm_path), mode="r+")
    kp = _open_keypoints(kp_path, group.attrs["keypoints"]["content_hash"])
    layout = kp.layout
    starts = group["clip_start"][part.clip_lo : part.clip_hi]
    c, s = group["heatmaps"].shape[1], group["heatmaps"].shape[2]
    # Gaps between clips (chunk padding) must be zero; render_clip overwrites each clip's frames entirely.
    buf = np.zeros((part.frame_hi - part.frame_lo, c, s, s), dtype=params.dtype)  # (F_part, C, S, S)
    boxes, sums = [], []
    table = kp.table
    for i, (kps, scores) in enumerate(kp.read_range(part.clip_lo, part.clip_hi)):
        row = part.clip_lo + i
        img_hw = (int(table["img_h"].iat[row]), int(table["img_w"].iat[row]))
        a = int(starts[i]) - part.frame_lo
        view = buf[a : a + kps.shape[1]]  # (T, C, S, S)
        _, box = render_clip(kps, scores, img_hw, params, layout, out=view)
        boxes.append([float(x) for x in box])
        sums.append(clip_checksum(view))
    # zarr's scan for all-zero chunks costs 3x the encode here; empty chunks compress to a few bytes. Per-array
    # config, not zarr.config.set: that is process-global and partitions run in parallel threads.
    heatmaps = _writing_empty_chunks(group["heatmaps"])
    heatmaps[part.frame_lo : part.frame_hi] = buf
    shard_frames = heatmaps.shards[0]
    shards = {shard_key(i): _file_crc(hm_path / shard_key(i)) for i in _partition_shards(part, shard_frames)}
    payload = {
        "partition": asdict(part),
        "fingerprint": group.attrs["fingerprint"],
        "boxes": boxes,
        "checksums": sums,
        "shards": shards,
    }
    _write_marker(
        hm_path / PROGRESS_DIR / f"{part.index}.json", {**payload, "digest": _marker_digest(payload)}
    )
    return len(buf)


def render_clip(
    keypoints: np.ndarray,
    scores: np.ndarray,
    img_hw: tuple[int, int],
    params: RenderParams,
    layout: Layout,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One clip's heatmaps, exactly as stored: PoseCompact box -> canvas -> kernels. keypoints (M, T, V, 2)
    in source pixels, scores (M, T, V). Fills `out` (T, C, S, S) of params.dtype (allocated when None);
    returns (out, crop box [x0, y0, x1, y1]). `predict` uses it to render new poses like the training data."""
    from etl.compact import compact_box, to_canvas
    from etl.kernels import render_heatmaps

    if out is None:
        n_channels = len(layout.channel_names(params.channels))
        out = np.empty((keypoints.shape[1], n_channels, params.size, params.size), dtype=params.dtype)
    box = compact_box(keypoints, scores, padding=params.padding, eps=params.eps, img_hw=img_hw)
    canvas = to_canvas(keypoints, box, params.size)  # (M, T, V, 2) in output pixels
    with_joints = params.channels in ("joints", "joints+limbs")
    limbs = np.asarray(layout.limbs, np.int64) if params.channels in ("limbs", "joints+limbs") else None
    with _KERNEL_LOCK:
        render_heatmaps(
            canvas, scores, out, with_joints=with_joints, limbs=limbs, sigma=params.sigma, eps=params.eps
        )
    return out, box


def _write_marker(path: Path, payload: dict) -> None:
    # Written after the frames, and atomically: a marker exists only for a partition that is on disk.
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _finalise(tmp: Path, kp: KeypointStore, parts: list[Partition]) -> None:
    """Collect the markers into crop_boxes and checksums, copy the tables, then seal (complete=True)."""
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
    group = zarr.open_group(str(tmp), mode="r+")
    group.create_array("crop_boxes", data=boxes, dimension_names=("clip", "xyxy"), overwrite=True)
    group.create_array("checksums", data=sums, dimension_names=("clip",), overwrite=True)
    write_table(kp.table, tmp / CLIPS_FILE)
    write_table(read_rejects(kp.path), tmp / REJECTS_FILE)
    shutil.rmtree(tmp / PROGRESS_DIR)
    seal(tmp, DATA_ARRAYS, table_attrs(kp.table))
