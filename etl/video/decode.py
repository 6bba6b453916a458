"""Streaming video decoding with PyAV: one frame at a time with its timestamp, never all frames in memory.

Real videos have variable frame timing, so each frame's time comes from its own presentation timestamp
(`frame.time`), not from its index / fps. Every FFmpeg failure becomes an ActrecError naming the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from etl.common.errors import ActrecError


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float  # the stream's average rate (0.0 when the container does not say)
    n_frames: int | None  # as the container declares it (None when it does not)
    codec: str


@dataclasses.dataclass(frozen=True)
class Frame:
    index: int
    time: float  # seconds from the stream start
    rgb: np.ndarray  # (H, W, 3) uint8, C-contiguous


def probe(path: Path) -> VideoInfo:
    """The first video stream's size, rate, frame count and codec, without decoding a frame."""
    with _open(path) as container:
        return _info(path, _video_stream(path, container))


def frames(path: Path) -> Iterator[Frame]:
    """Decode the first video stream frame by frame. ActrecError when the file is no video, has no decodable
    video stream, or is corrupt where decoding stops; a stream that decodes to nothing is an error too."""
    with _open(path) as container:
        stream = _video_stream(path, container)
        stream.thread_type = "AUTO"  # frame-parallel decoding; frames still come out in order
        base = None
        index, time = 0, 0.0
        try:
            for frame in container.decode(stream):
                time = _frame_time(frame, index, stream)
                base = time if base is None else base
                rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))  # (H, W, 3)
                yield Frame(index, time - base, rgb)
                index += 1
        except av.error.FFmpegError as exc:
            raise ActrecError(
                f"{path}: corrupt or truncated video, decoding failed after {index} frames ({_reason(exc)}); "
                "re-encode it (e.g. ffmpeg -i in.mp4 out.mp4) or remove it"
            ) from None
        if index == 0:
            raise ActrecError(f"{path}: the video stream holds no decodable frame (empty or truncated video)")
        _check_complete(path, container, stream, index, time - base)


def _check_complete(path: Path, container, stream, n_decoded: int, last_time: float) -> None:
    """FFmpeg stops quietly at the end of a cut-off file: compare what was decoded with what the header
    declares (frame count, duration) and refuse a video that ends well before (10% slack for VFR headers)."""
    declared_frames = int(stream.frames or 0)
    if declared_frames and n_decoded < 0.9 * declared_frames:
        raise ActrecError(
            f"{path}: truncated video, {n_decoded} of the {declared_frames} frames its header declares decoded"
        )
    declared = container.duration / 1e6 if container.duration else 0.0  # microseconds -> s
    rate = stream.average_rate or stream.guessed_rate
    step = 1.0 / float(rate) if rate else 0.0
    if declared and last_time + 2 * step < 0.9 * declared:
        raise ActrecError(
            f"{path}: truncated video, the frames end at {last_time:.2f} s of the {declared:.2f} s its header "
            "declares"
        )


def _open(path: Path):
    try:
        return av.open(str(path), mode="r")
    except av.error.EOFError:
        raise ActrecError(
            f"{path}: the file ends before its first frame (empty or truncated video)"
        ) from None
    except av.error.FFmpegError as exc:
        raise ActrecError(f"{path}: not a readable video ({_reason(exc)})") from None


def _video_stream(path: Path, container):
    if not container.streams.video:
        raise ActrecError(f"{path}: no video stream in the file (audio or data only, or a truncated file)")
    stream = container.streams.video[0]
    if stream.codec_context is None or stream.codec_context.codec is None:
        raise ActrecError(
            f"{path}: unsupported video codec (no decoder in PyAV's FFmpeg): re-encode to H.264"
        )
    return stream


def _info(path: Path, stream) -> VideoInfo:
    ctx = stream.codec_context
    if not ctx.width or not ctx.height:
        raise ActrecError(f"{path}: the video stream declares no frame size (corrupt header?)")
    rate = stream.average_rate or stream.guessed_rate
    return VideoInfo(
        width=int(ctx.width),
        height=int(ctx.height),
        fps=float(rate) if rate else 0.0,
        n_frames=int(stream.frames) if stream.frames else None,
        codec=str(ctx.codec.name),
    )


def _frame_time(frame, index: int, stream) -> float:
    if frame.time is not None:
        return float(frame.time)
    rate = (
        stream.average_rate or stream.guessed_rate
    )  # no timestamp at all: the nominal timing is all there is
    return index / float(rate) if rate else float(index)


def _reason(exc: Exception) -> str:
    return " ".join(str(getattr(exc, "strerror", None) or exc).split())
