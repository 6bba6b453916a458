"""The options every reader receives; `actrec-etl ingest` fills them from its command-line flags."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from etl.errors import ActrecError
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
