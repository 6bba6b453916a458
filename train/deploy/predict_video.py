"""`actrec-train predict CKPT VIDEO`: a video is turned into a pose file first (`etl/video`, the `video` extra),
then predicted like any pose file; `--overlay out.mp4|.gif` draws the poses, the predicted label and the label
timeline on the video's own frames, so a user sees what the model saw and said.

The pose file is cached per video (path, size, modification time) under ~/.cache/actrec/video-poses, so predicting
the same video with another checkpoint or window does not estimate its poses again.
"""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from etl.common.errors import ActrecError
from etl.video.options import VIDEO_SUFFIXES, ExtractOptions, require_video_extra

OVERLAY_SUFFIXES = (".mp4", ".gif")
GIF_MAX_WIDTH = 640  # a GIF holds 8-bit palette frames: full-HD frames would make it huge for nothing
_COLORS = np.array(  # RGB per class, for the timeline bar
    [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
     (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)],
    np.uint8,
)  # fmt: skip


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "actrec" / "video-poses"


def video_pose_file(video: Path, cache: Path | None = None) -> Path:
    """The pose file of `video` (extracted with the default backend on first use, with a progress bar)."""
    require_video_extra()
    from etl.common.progress import progress_bar
    from etl.video.extract import extract_video, output_path

    stat = video.stat()
    key = hashlib.sha256(f"{video.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    out = output_path(video, (cache or cache_dir()) / key)
    if not out.exists():
        with progress_bar(f"poses of {video.name}", unit="frames") as bar:
            state = {"total": None}
            extract_video(
                video,
                out,
                ExtractOptions(),
                on_video=lambda _path, n: state.update(total=n),
                on_frame=lambda done: bar.update_to(done, state["total"]),
            )
    return out


def frame_labels(
    n_frames: int, *, top: tuple[str, float] | None = None, windows=None
) -> list[tuple[str, float]]:
    """(label, probability) shown on each frame: the clip's top-1, or with windows (a train.deploy.windows.ClipWindows)
    the window whose centre is nearest to the frame."""
    if windows is None:
        return [top] * n_frames
    centres = (windows.starts + windows.ends - 1) / 2  # (N,)
    nearest = np.abs(np.arange(n_frames)[:, None] - centres[None]).argmin(axis=1)  # (T,)
    tops = [windows.top(i, 1)[0] for i in range(len(windows.starts))]
    return [tops[i] for i in nearest]


def write_overlay(video: Path, pose_file: Path, out: Path, *, top=None, windows=None) -> int:
    """The video with the persons' skeletons, the label of each frame (the clip's `top` (label, probability), or
    the nearest window's of `windows`, a train.deploy.windows.ClipWindows) and a label timeline drawn on it; .mp4 (H.264)
    or .gif (at most 640 px wide). Returns the number of frames written (= the video's)."""
    import av

    from etl.pose.skeleton import get_layout
    from etl.video.decode import frames, probe

    if out.suffix.lower() not in OVERLAY_SUFFIXES:
        raise ActrecError(f"--overlay {out}: write a .mp4 or a .gif")
    with np.load(pose_file, allow_pickle=False) as f:
        keypoints, layout = f["keypoints"], get_layout(str(f["layout"]))  # (T, M, V, 2) NaN where missing
    labels = frame_labels(len(keypoints), top=top, windows=windows)
    classes = windows.classes if windows is not None else [top[0]]
    info = probe(video)
    gif = out.suffix.lower() == ".gif"
    scale = min(1.0, GIF_MAX_WIDTH / info.width) if gif else 1.0
    width, height = _even(info.width * scale), _even(info.height * scale)
    bar = _timeline(labels, classes, width)  # (12, W, 3)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial{out.suffix}")  # the muxer picks the format by the suffix
    n = 0
    try:
        with av.open(str(partial), "w") as container:
            stream = container.add_stream("gif" if gif else "libx264", rate=round(info.fps) or 25)
            stream.width, stream.height = width, height
            stream.pix_fmt = "rgb8" if gif else "yuv420p"
            stream.codec_context.time_base = Fraction(1, 1000)
            for frame in frames(video):
                if frame.index >= len(keypoints):
                    break
                rgb = _draw(
                    frame.rgb,
                    keypoints[frame.index],
                    layout,
                    labels[frame.index],
                    (width, height),
                    bar,
                    frame.index / max(len(labels) - 1, 1),
                )
                image = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                image.pts, image.time_base = round(frame.time * 1000), stream.codec_context.time_base
                for packet in stream.encode(image):
                    container.mux(packet)
                n += 1
            for packet in stream.encode():
                container.mux(packet)
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return n


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)  # H.264 with yuv420p needs even sizes


def _timeline(labels: list[tuple[str, float]], classes: list[str], width: int) -> np.ndarray:
    """(12, width, 3) one colour per class along the video's frames."""
    index = {name: i for i, name in enumerate(classes)}
    per_frame = np.array([index.get(name, 0) for name, _ in labels])  # (T,)
    columns = per_frame[(np.arange(width) * len(per_frame) // width).clip(0, len(per_frame) - 1)]  # (W,)
    return np.repeat(_COLORS[columns % len(_COLORS)][None], 12, axis=0)


def _draw(rgb, persons, layout, label, size, bar, progress) -> np.ndarray:
    import cv2

    width, height = size
    sx, sy = width / rgb.shape[1], height / rgb.shape[0]
    image = np.ascontiguousarray(
        cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA) if (sx, sy) != (1, 1) else rgb.copy()
    )
    thick = max(1, round(width / 400))
    for m, joints in enumerate(persons):  # (V, 2)
        colour = tuple(int(c) for c in _COLORS[m % len(_COLORS)])
        xy = joints * np.array([sx, sy])
        for a, b in layout.limbs:
            if np.isfinite(xy[a]).all() and np.isfinite(xy[b]).all():
                cv2.line(
                    image,
                    tuple(int(v) for v in xy[a]),
                    tuple(int(v) for v in xy[b]),
                    colour,
                    thick,
                    cv2.LINE_AA,
                )
        for point in xy[np.isfinite(xy).all(axis=1)]:
            cv2.circle(image, tuple(int(v) for v in point), thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
    name, p = label
    text, font = f"{name} {p:.2f}", max(0.4, width / 1600)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
    cv2.rectangle(image, (0, 0), (tw + 12, th + base + 12), (0, 0, 0), -1)
    cv2.putText(image, text, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), thick, cv2.LINE_AA)
    image[-bar.shape[0] :] = bar
    cursor = min(int(progress * (width - 1)), width - 1)
    image[-bar.shape[0] - 4 :, max(cursor - 1, 0) : cursor + 2] = 255  # where this frame is on the timeline
    return image
