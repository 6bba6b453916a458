"""The options every reader receives; `actrec-etl ingest` fills them from its command-line flags."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from etl.errors import ActrecError
from etl.limits import (
    DEFAULT_MAX_CLIP_BYTES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_PERSONS,
    check_array_size,
    check_clip_size,
)
from etl.poseclip import PoseClip, Reject
from etl.readers.manifest import ManifestRow, apply_manifest
from etl.skeleton import Layout


@dataclass
class ReadOptions:
    layout: Layout  # the joint layout chosen with --layout (openpose-json parses by it)
    labels_csv: Path | None = None  # manifest: clip_id,label_name[,split,label,img_h,img_w,...]
    classes_file: Path | None = None  # one class name per line: names for numeric labels (pyskl)
    project: str = "pinhole"  # utd-mhad 3D -> 2D: "pinhole" | "ortho"
    occluded_score: float = 0.5  # penn-action: joints annotated as not visible; ntu-skeleton: inferred joints
    split_protocol: str | None = None  # pyskl: split family (e.g. "xsub"); jhmdb-ddnet: "1" | "2" | "3";
    # ntu-skeleton: "xsub" | "xview" | "xset"
    coords: str = "color"  # ntu-skeleton 2D coordinates: "color" | "depth" | "3d" (projected with `project`)
    image_size: tuple[int, int] | None = None  # (img_h, img_w) of formats with normalised coordinates
    # bounds checked from declared sizes before a reader allocates (etl/limits.py); a clip above one is rejected
    max_persons: int = DEFAULT_MAX_PERSONS  # persons (tracks) per clip
    max_frames: int = DEFAULT_MAX_FRAMES  # frames per clip
    max_clip_bytes: int = (
        DEFAULT_MAX_CLIP_BYTES  # bytes of one clip's arrays, and of any array a file declares
    )

    def __post_init__(self):
        for name in ("max_persons", "max_frames", "max_clip_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ActrecError(f"{name} must be a positive integer, found {value!r}")

    def check_clip_size(self, n_persons: int, n_frames: int, n_joints: int) -> None:
        """LimitError when a (M, T, V) clip is above max_persons, max_frames or max_clip_bytes."""
        check_clip_size(
            n_persons,
            n_frames,
            n_joints,
            max_persons=self.max_persons,
            max_frames=self.max_frames,
            max_clip_bytes=self.max_clip_bytes,
        )

    def check_array_size(self, shape, dtype, what: str) -> None:
        """LimitError when an array a file declares is above max_clip_bytes (checked before reading it)."""
        check_array_size(shape, dtype, what, max_clip_bytes=self.max_clip_bytes)


@dataclass(frozen=True)
class ReadContext:
    """What a reader needs besides its paths: the options and the side files `read_source` loaded once."""

    options: ReadOptions
    manifest: dict[str, ManifestRow] | None = None  # labels_csv rows by clip id
    classes: list[str] | None = None  # classes_file names by numeric label

    def labelled(self, clip: PoseClip | Reject) -> PoseClip | Reject:
        """The clip with its manifest row applied (the manifest wins where it has a value); rejects pass."""
        if self.manifest is None or isinstance(clip, Reject):
            return clip
        return apply_manifest(clip, self.manifest.get(clip.clip_id))


def parse_image_size(text: str) -> tuple[int, int]:
    """'1920x1080' (width x height, as video tools write it) -> (img_h, img_w) = (1080, 1920)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise ActrecError(f"--image-size must be WIDTHxHEIGHT in pixels, e.g. 1920x1080, found {text!r}")
    return int(match.group(2)), int(match.group(1))
