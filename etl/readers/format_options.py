"""Options that only some formats take (`actrec-etl ingest` flags): each is declared once here, with its default
and its value check, and each format's spec names the ones it reads (`FormatSpec.options`). Options every reader
shares (layout, manifest, classes, size limits) are `ReadOptions` fields instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from etl.common.errors import ActrecError

PROJECTIONS = ("pinhole", "ortho")  # 3D -> 2D: a pinhole camera or an orthographic view (depth dropped)


@dataclass(frozen=True)
class FormatOption:
    """An option read by some formats: its name (the ReadOptions keyword and ingest flag), default and check."""

    name: str
    default: object
    help: str
    check: Callable[[object], None] | None = None  # ActrecError for a value no format can use


def _check_project(value) -> None:
    if value not in PROJECTIONS:
        raise ActrecError(f"unknown projection {value!r}; choose one of {', '.join(PROJECTIONS)}")


def _check_occluded_score(value) -> None:
    if not 0.0 <= value <= 1.0:
        raise ActrecError(f"occluded_score must be in [0, 1], found {value}")


def _check_image_size(value) -> None:
    if value is not None and not (len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
        raise ActrecError(f"image size must be two positive integers (height, width), found {value}")


PROJECT = FormatOption("project", "pinhole", "3D -> 2D projection: pinhole | ortho", _check_project)
OCCLUDED_SCORE = FormatOption(
    "occluded_score",
    0.5,
    "score of joints annotated as occluded (penn-action) or inferred (ntu-skeleton)",
    _check_occluded_score,
)
SPLIT_PROTOCOL = FormatOption(
    "split_protocol",
    None,
    "which split family names the split column (pyskl: e.g. xsub; jhmdb-ddnet: 1|2|3; "
    "ntu-skeleton: xsub|xview|xset)",
)
COORDS = FormatOption("coords", "color", "2D coordinates of NTU skeletons: color | depth | 3d")
IMAGE_SIZE = FormatOption(
    "image_size", None, "(img_h, img_w) of formats with normalised coordinates", _check_image_size
)
FORMAT_OPTIONS: dict[str, FormatOption] = {
    option.name: option for option in (PROJECT, OCCLUDED_SCORE, SPLIT_PROTOCOL, COORDS, IMAGE_SIZE)
}


def option_default(name: str):
    """The default of format option `name` (the ingest flag's default)."""
    return FORMAT_OPTIONS[name].default
