"""THE render spec: every setting of a heatmap render, in one frozen dataclass, in a module with no heavy imports
(the command lines read their option defaults from here, so `--help` loads neither numpy, zarr nor numba).

Who uses it: `actrec-etl render` (options, fingerprint, the store's attrs), the heatmap store (its attrs hold the
spec once, under "render"), the keypoint source (renders on the fly with it), `actrec-train fit` (the `--source
keypoints` options), checkpoints (the render dict predict draws new poses with), predict and windows.
A new render option is one new field here: its default is the CLI's and params.yaml's (tests/test_etl_settings.py
holds them together), it is written to and read from store attrs and checkpoints by the methods below, and it is
part of the fingerprint. `metadata={"draw": True}` marks the fields that change the pixels (fit takes those and a
checkpoint records them); the others only say how the store keeps them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

DTYPES = ("uint8", "float16")
CODECS = ("lz4", "zstd", "none")
DEFAULT_LEVEL = {"lz4": 5, "zstd": 1, "none": 0}
SIZE_RANGE = (8, 1024)  # pixels of the square maps
# Part of every fingerprint (and so of a checkpoint's data identity): the heatmap store's format_version 2, when
# the fingerprint was defined. It changes only when the same spec draws other pixels, not when attrs move.
FINGERPRINT_VERSION = 2
_DRAW = {"draw": True}


class HasChannels(Protocol):
    """What the spec needs of a skeleton layout (etl.pose.skeleton.Layout), without importing it."""

    name: str
    limbs: Any
    definition: (
        dict | None
    )  # None for a built-in layout; else stored under "layout_def" (etl.pose.layout_def)

    def channel_names(self, preset: str) -> list[str]: ...

    def channel_flip(self, preset: str) -> list[int]: ...


def _layout_def(layout: HasChannels) -> dict[str, Any]:
    """A layout that is not built in travels with its definition; a built-in one adds nothing (same bytes)."""
    return {} if layout.definition is None else {"layout_def": layout.definition}


@dataclass(frozen=True)
class RenderSpec:
    channels: str = field(default="joints+limbs", metadata=_DRAW)  # joints | limbs | joints+limbs
    # the order of the drawn fields below is the key order of a checkpoint's render dict (torch.save keeps it)
    sigma: float = field(default=0.6, metadata=_DRAW)  # Gaussian sigma in output pixels
    size: int = field(default=64, metadata=_DRAW)  # output heatmap size in pixels (square)
    padding: float = field(default=0.25, metadata=_DRAW)  # PoseCompact padding around the clip's keypoint box
    eps: float = field(default=1e-4, metadata=_DRAW)  # joints with a score below this are not drawn
    dtype: str = field(default="uint8", metadata=_DRAW)
    codec: str = "lz4"  # fastest to decode (the loader's cost); zstd stores ~2.4x less, decodes ~1.6x slower
    level: int | None = None  # None: the codec's default (DEFAULT_LEVEL), filled in at construction
    frames_per_chunk: int = 16
    chunks_per_shard: int = 16

    def __post_init__(self) -> None:
        if self.level is None:
            object.__setattr__(self, "level", DEFAULT_LEVEL.get(self.codec, 0))

    # --- the fields -----------------------------------------------------------------------------------------
    @classmethod
    def draw_fields(cls) -> tuple[str, ...]:
        """The fields that change the pixels, in declaration order (fit's render options, a checkpoint's)."""
        return tuple(f.name for f in fields(cls) if f.metadata.get("draw"))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each field's default as declared (level: None, the codec's default)."""
        return {f.name: f.default for f in fields(cls)}

    @property
    def with_joints(self) -> bool:
        return self.channels in ("joints", "joints+limbs")

    def limbs(self, layout: HasChannels) -> list[tuple[int, int]] | None:
        """The limb (a, b) joint pairs drawn as channels, or None when the preset draws no limbs."""
        return [tuple(x) for x in layout.limbs] if self.channels in ("limbs", "joints+limbs") else None

    # --- validation and identity ----------------------------------------------------------------------------
    def check(self) -> None:
        from etl.common.errors import ActrecError

        if self.dtype not in DTYPES:
            raise ActrecError(f"--dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        lo, hi = SIZE_RANGE
        if not lo <= self.size <= hi:
            raise ActrecError(f"--size {self.size} is out of range ({lo}-{hi} pixels)")
        if self.sigma <= 0:
            raise ActrecError(f"--sigma must be positive, not {self.sigma}")
        if self.frames_per_chunk < 1 or self.chunks_per_shard < 1:
            raise ActrecError("--frames-per-chunk and --chunks-per-shard must be >= 1")
        if self.codec not in CODECS:
            raise ActrecError(f"unknown codec {self.codec!r}; choose one of {', '.join(CODECS)}")

    def fingerprint(self, keypoints_hash: str) -> str:
        """Identity of a render: a partial store is resumed only by a run with the same fingerprint."""
        text = json.dumps(
            {"params": asdict(self), "keypoints": keypoints_hash, "v": FINGERPRINT_VERSION}, sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # --- store attrs ----------------------------------------------------------------------------------------
    def to_attrs(self, layout: HasChannels) -> dict[str, Any]:
        """What a heatmap store (and the keypoint source standing in for one) records: the spec once, under
        "render", and what it means for this layout (channel names, flip permutation, limbs)."""
        return {
            "layout": layout.name,
            "channels": layout.channel_names(self.channels),
            "flip_permutation": layout.channel_flip(self.channels),
            "limbs": [list(x) for x in layout.limbs],
            "render": asdict(self),
            **_layout_def(layout),
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> RenderSpec:
        """The spec a store was rendered with (a field it predates takes its default)."""
        render = attrs["render"]
        return cls(**{f.name: render[f.name] for f in fields(cls) if f.name in render})

    # --- checkpoints ----------------------------------------------------------------------------------------
    @classmethod
    def checkpoint_keys(cls) -> tuple[str, ...]:
        """The keys of a checkpoint's render dict, in order (the preset is stored as "channel_preset")."""
        drawn = tuple(k for k in cls.draw_fields() if k != "channels")
        return ("layout", "channel_preset", "channels", "flip_permutation", *drawn, "input_size")

    def to_checkpoint(self, layout: HasChannels, input_size: int) -> dict[str, Any]:
        """The render dict a checkpoint carries: what predict needs to draw new poses like the training data."""
        drawn = {k: getattr(self, k) for k in self.draw_fields() if k != "channels"}
        return {
            "layout": layout.name,
            "channel_preset": self.channels,
            "channels": layout.channel_names(self.channels),
            "flip_permutation": layout.channel_flip(self.channels),
            **drawn,
            "input_size": input_size,
            **_layout_def(layout),
        }

    @classmethod
    def from_checkpoint(cls, render: dict[str, Any]) -> RenderSpec:
        """The spec of a checkpoint's (checked) render dict: what predict and `--source keypoints` draw with.
        Each value is cast to its field's type (a checkpoint may hold 64 for 64.0)."""
        kinds = {f.name: type(f.default) for f in fields(cls)}
        values = {k: kinds[k](render[k]) for k in cls.draw_fields() if k != "channels" and k in render}
        return cls(channels=render["channel_preset"], **values)
