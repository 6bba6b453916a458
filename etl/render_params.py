"""The settings of `actrec-etl render` as plain data, in a module with no heavy imports: the command line reads
its option defaults from here (so `actrec-etl --help` and the other commands load neither zarr nor numba).
`etl.render.RenderParams` adds the checks and the fingerprint; params.yaml's `render:` block repeats these
defaults (tests/test_settings.py holds the three together)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderSettings:
    channels: str = "joints+limbs"  # joints | limbs | joints+limbs
    size: int = 64  # output heatmap size in pixels (square)
    sigma: float = 0.6  # Gaussian sigma in output pixels
    padding: float = 0.25  # PoseCompact padding around the clip's keypoint box
    eps: float = 1e-4  # joints with a score below this are not drawn
    dtype: str = "uint8"
    codec: str = "lz4"  # fastest to decode (the loader's cost); zstd stores ~2.4x less, decodes ~1.6x slower
    level: int | None = None  # None: the codec's default (etl.heatmap_store.DEFAULT_LEVEL)
    frames_per_chunk: int = 16
    chunks_per_shard: int = 16
