"""`actrec-etl extract`: videos -> one pose file per video, in the `npz` layout `ingest` reads (docs/formats.md).

Each file holds keypoints (T, M, V, 2) NaN where missing, scores (T, M, V), timestamps (T,) seconds from the
frames, and 0-d img_h, img_w, fps, backend, layout, video, codec. It is written to a hidden `.<name>.partial`
and renamed when complete, so a killed run never leaves a file `ingest` would read, and a rerun skips every
video whose file exists (resumable). A bad video is reported with one line; the other videos are still done.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from etl.common.errors import ActrecError, Interrupted
from etl.pose.clip import safe_clip_id
from etl.pose.layout_map import layout_mapping
from etl.pose.skeleton import get_layout
from etl.video.backends import PoseBackend, make_backend
from etl.video.decode import frames, probe
from etl.video.options import ExtractOptions
from etl.video.sources import find_videos, no_video_message
from etl.video.tracker import Tracker

PARTIAL_SUFFIX = ".partial"
_DEFAULTS = ExtractOptions()


@dataclasses.dataclass(frozen=True)
class VideoResult:
    video: Path
    out: Path | None  # the pose file (None when the video failed)
    status: str  # "done" | "skipped" (its file exists) | "failed"
    n_frames: int = 0
    n_with_person: int = 0  # frames where at least one person was found
    n_persons: int = 0  # tracks written
    seconds: float = 0.0
    error: str | None = None


def output_path(video: Path, out_dir: Path) -> Path:
    try:
        return out_dir / f"{safe_clip_id(video.stem)}.npz"
    except ValueError:
        raise ActrecError(
            f"{video}: the file name has no usable character for a clip id; rename it"
        ) from None


def extract_all(
    paths: Iterable[Path],
    out_dir: Path,
    options: ExtractOptions = _DEFAULTS,
    *,
    on_video: Callable[[Path, int | None], None] | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> list[VideoResult]:
    """Extract every video of `paths` into `out_dir`; one VideoResult per video, in order. `on_video(path,
    declared frame count)` is called before each video is decoded, `on_frame(frames done)` after each frame."""
    paths = list(paths)
    videos = find_videos(paths)
    if not videos and not options.allow_empty:
        raise ActrecError(no_video_message(paths))
    out_dir.mkdir(parents=True, exist_ok=True)
    results, owners = [], {}
    for video in videos:
        try:
            out = output_path(video, out_dir)
            if out in owners:
                raise ActrecError(
                    f"{video}: writes the same file {out.name} as {owners[out]}; rename one of them"
                )
            owners[out] = video
            if out.exists():
                results.append(VideoResult(video, out, "skipped"))
                continue
            results.append(extract_video(video, out, options, on_video=on_video, on_frame=on_frame))
        except ActrecError as exc:
            results.append(VideoResult(video, None, "failed", error=str(exc)))
        except KeyboardInterrupt:
            done = sum(r.status == "done" for r in results)
            raise Interrupted(
                f"interrupted during {video}: {done} videos extracted into {out_dir}, nothing half-written; run "
                "the same command again to go on (finished videos are skipped)"
            ) from None
    return results


def extract_video(
    video: Path,
    out: Path,
    options: ExtractOptions = _DEFAULTS,
    *,
    on_video: Callable[[Path, int | None], None] | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> VideoResult:
    """Decode `video`, estimate poses, track persons and write `out` atomically. ActrecError on bad input."""
    started = time.perf_counter()
    info = probe(video)
    if info.width * info.height > options.max_pixels:
        raise ActrecError(
            f"{video}: {info.width}x{info.height} frames exceed max_pixels={options.max_pixels} "
            "(downscale the video, or raise --max-pixels if there is memory for it)"
        )
    target = get_layout(options.layout)
    if on_video is not None:
        on_video(video, info.n_frames)
    backend = make_backend(
        options.backend, model=options.model, layout=target, min_person_score=options.min_person_score
    )
    try:
        mapping = layout_mapping(backend.layout, target)
        times, per_frame = _estimate(video, backend, mapping, info.width, info.height, on_frame)
    finally:
        backend.close()
    keypoints, scores = _tracks_to_arrays(per_frame, target.n_joints, options.max_persons)
    n_with_person = sum(1 for _, (xy, _sc) in per_frame if len(xy))
    if n_with_person == 0:
        raise ActrecError(f"{video}: no person found in any of its {len(times)} frames; nothing written")
    _write_atomically(
        out,
        keypoints=keypoints,  # (T, M, V, 2)
        scores=scores,  # (T, M, V)
        timestamps=np.asarray(times, np.float64),  # (T,)
        img_h=np.array(info.height),
        img_w=np.array(info.width),
        fps=np.array(info.fps),
        backend=np.array(backend.name),
        layout=np.array(target.name),
        video=np.array(video.name),
        codec=np.array(info.codec),
    )
    return VideoResult(
        video, out, "done", len(times), n_with_person, keypoints.shape[1], time.perf_counter() - started
    )


def _estimate(video, backend: PoseBackend, mapping, width, height, on_frame):
    """Per frame: its time and (track ids, keypoints (N, V, 2) NaN where missing, scores (N, V))."""
    tracker, times, per_frame = Tracker(), [], []
    idx = np.asarray(mapping, np.intp)
    for frame in frames(video):
        xy, sc = backend(frame.rgb)  # (N, V_backend, 2), (N, V_backend)
        xy, sc = xy[:, idx].astype(np.float32), sc[:, idx].astype(np.float32)
        # a joint outside the frame was not seen (MediaPipe extrapolates off-screen joints): missing
        inside = (xy[..., 0] >= 0) & (xy[..., 0] < width) & (xy[..., 1] >= 0) & (xy[..., 1] < height)
        present = inside & (sc > 0) & np.isfinite(xy).all(axis=-1)  # (N, V)
        xy[~present], sc[~present] = np.nan, 0.0
        keep = present.any(axis=1)
        xy, sc = xy[keep], sc[keep]
        ids = tracker.update(frame.index, xy)
        times.append(frame.time)
        per_frame.append((ids, (xy, sc)))
        if on_frame is not None:
            on_frame(frame.index + 1)
    return times, per_frame


def _tracks_to_arrays(per_frame, n_joints: int, max_persons: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, M, V, 2) keypoints NaN where missing and (T, M, V) scores; the M tracks seen in most frames, in
    order of first appearance (so person 0 is the first one seen among those kept)."""
    seen: dict[int, int] = {}
    for ids, _ in per_frame:
        for i in ids:
            seen[i] = seen.get(i, 0) + 1
    kept = sorted(sorted(seen, key=lambda i: (-seen[i], i))[:max_persons])  # track ids grow with first sight
    column = {track: m for m, track in enumerate(kept)}
    t, m = len(per_frame), max(len(kept), 1)
    keypoints = np.full((t, m, n_joints, 2), np.nan, np.float32)
    scores = np.zeros((t, m, n_joints), np.float32)
    for f, (ids, (xy, sc)) in enumerate(per_frame):
        for n, track in enumerate(ids):
            if track in column:
                keypoints[f, column[track]] = xy[n]
                scores[f, column[track]] = sc[n]
    return keypoints, scores


def _write_atomically(out: Path, **arrays: np.ndarray) -> None:
    partial = out.with_name(f".{out.name}{PARTIAL_SUFFIX}")  # hidden, and not *.npz: ingest never reads it
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as fh:
            np.savez_compressed(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ActrecError(
            f"{out}: cannot write the pose file ({exc.strerror or exc}); check the --out folder"
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
