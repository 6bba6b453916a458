"""The options every reader receives; `actrec-etl ingest` fills them from its command-line flags."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject
from etl.pose.limits import (
    DEFAULT_MAX_CLIP_BYTES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_PERSONS,
    check_array_size,
    check_clip_size,
)
from etl.pose.skeleton import Layout
from etl.readers.format_options import FORMAT_OPTIONS
from etl.readers.manifest import ManifestRow, apply_manifest


@dataclass(init=False)
class ReadOptions:
    """The options of one read: those every reader shares are fields; the options only some formats take
    (`project`, `occluded_score`, `split_protocol`, `coords`, `image_size`, declared in
    etl/readers/format_options.py) are given as keywords too and kept in `format_options`.

    ReadOptions(layout, labels_csv=..., max_frames=..., project="ortho")
    """

    layout: Layout  # the joint layout chosen with --layout (openpose-json parses by it)
    labels_csv: Path | None = None  # manifest: clip_id,label_name[,split,label,img_h,img_w,...]
    classes_file: Path | None = None  # one class name per line: names for numeric labels (pyskl)
    # bounds checked from declared sizes before a reader allocates (etl/pose/limits.py); a clip above one is rejected
    max_persons: int = DEFAULT_MAX_PERSONS  # persons (tracks) per clip
    max_frames: int = DEFAULT_MAX_FRAMES  # frames per clip
    max_clip_bytes: int = (
        DEFAULT_MAX_CLIP_BYTES  # bytes of one clip's arrays, and of any array a file declares
    )
    format_options: dict[str, object] = field(default_factory=dict)  # the format options given, by name

    def __init__(
        self,
        layout: Layout,
        labels_csv: Path | None = None,
        classes_file: Path | None = None,
        *,
        max_persons: int = DEFAULT_MAX_PERSONS,
        max_frames: int = DEFAULT_MAX_FRAMES,
        max_clip_bytes: int = DEFAULT_MAX_CLIP_BYTES,
        format_options: Mapping[str, object] | None = None,  # as a mapping (dataclasses.replace passes it)
        **given_format_options,
    ):
        format_options = {**(format_options or {}), **given_format_options}
        unknown = sorted(set(format_options) - set(FORMAT_OPTIONS))
        if unknown:
            raise ActrecError(
                f"unknown read option(s) {', '.join(unknown)}; the formats take: {', '.join(FORMAT_OPTIONS)}"
            )
        self.layout, self.labels_csv, self.classes_file = layout, labels_csv, classes_file
        self.max_persons, self.max_frames, self.max_clip_bytes = max_persons, max_frames, max_clip_bytes
        self.format_options = dict(format_options)
        for name in ("max_persons", "max_frames", "max_clip_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ActrecError(f"{name} must be a positive integer, found {value!r}")

    def __getattr__(self, name: str):
        """A format option by name (`options.project`): the given value, else its default."""
        option = FORMAT_OPTIONS.get(name)
        if option is None or name.startswith("__"):
            raise AttributeError(name)
        return self.__dict__.get("format_options", {}).get(name, option.default)

    def check_format_options(self) -> None:
        """ActrecError for a given format option value that no format can use (e.g. project='fisheye')."""
        for name, value in self.format_options.items():
            check = FORMAT_OPTIONS[name].check
            if check is not None:
                check(value)

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
    format_options: Mapping[str, object] = field(default_factory=dict)  # the read format's options, resolved

    def option(self, name: str):
        """The value of a format option the read format declares (its default when not given)."""
        return self.format_options[name]

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
