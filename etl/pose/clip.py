"""The in-memory form of one clip as every reader produces it, before validation."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_clip_id(raw: str) -> str:
    """A clip id that is safe as a key, a file name and a pandas query value: [A-Za-z0-9._-] only.

    ASCII names keep their characters (others become '_'). A name with non-ASCII characters is transliterated
    (NFKD, accents dropped: 'ünï' -> 'uni') and gets a short hash of the whole name, so distinct names stay
    distinct ids: 'ünï日本' -> 'uni_<8 hex>', '日本' -> 'u_<8 hex>', 'über' and 'uber' differ."""
    text = str(raw)
    if text.isascii():
        cid = _UNSAFE.sub("_", text).strip("._")
        if not cid:
            raise ValueError(f"clip id {raw!r} has no usable characters")
        return cid
    # NFC first: the same name typed (NFC) or read from a macOS file system (NFD) gets the same id
    canonical = unicodedata.normalize("NFC", text)
    digest = hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:8]
    decomposed = unicodedata.normalize("NFKD", canonical)
    ascii_part = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    cid = _UNSAFE.sub("_", ascii_part).strip("._")
    return f"{cid}_{digest}" if cid else f"u_{digest}"


@dataclass
class PoseClip:
    """One clip of 2D poses (and, where the source has them, 3D joints). Readers fill it;
    `etl.pose.clip_checks` checks and cleans it.

    keypoints:   (M, T, V, 2) float32 pixel coordinates (x, y), NaN where a joint is missing
    scores:      (M, T, V) float32 confidences in [0, 1], 0 where a joint is missing
    keypoints3d: (M, T, V, 3) float32 camera-space (x, y, z) as the source gives them (Kinect: metres), NaN
                 where a joint is missing; None when the source has no 3D joints. Rendering never reads it.
    """

    clip_id: str
    keypoints: np.ndarray  # (M, T, V, 2) float32
    scores: np.ndarray  # (M, T, V) float32
    label_name: str | None
    split: str | None
    img_h: int
    img_w: int
    source: str  # file path, plus "#key" when one file holds many clips
    source_format: str
    label: int | None = None  # numeric label when the dataset defines one
    meta: dict = field(default_factory=dict)  # extra clip-table columns: viewpoint, subject, camera, fps...
    keypoints3d: np.ndarray | None = None  # (M, T, V, 3) float32, or None: no 3D joints

    @property
    def has_3d(self) -> bool:
        return self.keypoints3d is not None

    @property
    def n_persons(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.keypoints.shape[1]) if self.keypoints.ndim == 4 else 0


@dataclass(frozen=True)
class Reject:
    """A clip (or a whole file) that could not be kept, and why."""

    clip_id: str
    source: str
    reason: str
