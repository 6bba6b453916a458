"""Settings of `actrec-etl extract` (the CLI's option defaults come from here). Imports nothing heavy."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from etl.common.errors import ActrecError

BACKENDS = ("mediapipe", "onnx")
# the file suffixes a folder is searched for; a file named on the command line is tried whatever its suffix
VIDEO_SUFFIXES = (
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
    ".gif",
)


@dataclasses.dataclass(frozen=True)
class ExtractOptions:
    backend: str = "mediapipe"
    # the skeleton written: coco17 (mapped by joint name from the backend's own layout) or the backend's own
    layout: str = "coco17"
    model: Path | None = None  # the ONNX pose model (backend onnx)
    # a frame larger than this (width x height) is refused before decoding: 8K UHD
    max_pixels: int = 7680 * 4320
    max_persons: int = 20  # tracks kept per video (the ones seen in most frames)
    min_person_score: float = 0.3  # backend onnx: detections below this person score are dropped
    # no video in the sources: an empty output folder instead of an error (the DVC pipeline's extract stage,
    # whose default source data/videos holds none)
    allow_empty: bool = False


def require_video_extra() -> None:
    """ActrecError unless PyAV is importable (the `video` extra), instead of an ImportError traceback."""
    if importlib.util.find_spec("av") is None:
        raise ActrecError("extracting poses from videos needs the video extra: pip install 'actrec[video]'")
