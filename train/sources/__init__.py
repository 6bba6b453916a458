"""Where training clips come from (`--source`): one protocol, one class per kind, chosen by name in SOURCES.

heatmaps:  the cached, versioned heatmap store; train views are the stored maps cropped/flipped on the device
           (train/sources/heatmaps.py, heatmap_augment.py).
keypoints: a keypoint store, rendered on the fly after PoseC3D's coordinate-space augmentation
           (train/sources/keypoints.py), by the numba kernels in the loader workers or by torch on the device.
Both give the same fixed validation views (the store's values). fit, evaluation and predict call the protocol
and never ask which kind they hold: a new kind of input is a class here and one line in SOURCES.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Protocol

import pandas as pd
import torch
from torch.utils.data import Dataset

from etl.common.errors import ActrecError
from etl.heatmaps.spec import RenderSpec
from train.sources.heatmaps import HeatmapSource
from train.sources.keypoints import RENDERERS, KeypointSource


class TrainingSource(Protocol):
    """A store opened for training or evaluation, and what the loop needs from it."""

    name: ClassVar[str]  # the `--source` value; saved in checkpoints as "source"
    path: Path
    table: pd.DataFrame  # the clip table: one row per clip (label, split, ...); its index is the store row

    @property
    def attrs(self) -> dict: ...  # as a heatmap store's attrs: channels, size, sigma, dtype, fingerprint, ...

    @property
    def classes(self) -> list[str]: ...

    @property
    def channels(self) -> list[str]: ...

    @property
    def flip_permutation(self) -> list[int]: ...  # channel order of a mirrored view

    @classmethod
    def open(cls, path: str | Path, spec: RenderSpec | None = None) -> TrainingSource:
        """The store at `path`; `spec` is the render spec for a source that renders (the checkpoint's
        or fit's options); a source that reads stored heatmaps ignores them."""
        ...

    def dataset(
        self,
        rows: pd.DataFrame,
        *,
        clip_len: int,
        train: bool,
        num_clips: int = 1,
        seed: int = 0,
        input_size: int = 0,
        augment: bool = True,
        renderer: str = "numba",
    ) -> Dataset:
        """The Dataset of `rows` (a clip-table selection), items (views, label) for EpochSampler's (row, epoch).
        train=True: one random view (as `train_input` expects); False: `num_clips` fixed views (V, T, C, S, S)
        of the store's values, what predict_loader scores."""
        ...

    def train_input(
        self, *, device: torch.device, scale: float, input_size: int, augment: bool, renderer: str
    ) -> Callable[[object, torch.Generator], torch.Tensor]:
        """How a train loader batch becomes (B, C, T, input_size, input_size) float32 model input on `device`
        (augmented with the generator's draws where the dataset did not)."""
        ...

    def identity(self) -> dict:
        """What the model learns from (render settings, keypoints, clip table): saved in checkpoints as "data",
        compared on resume."""
        ...

    def describe(self, renderer: str) -> str:
        """A note for fit's start line (e.g. which renderer), or ""."""
        ...

    def check_unchanged(self) -> None:
        """Raise ActrecError if the store on disk is no longer the one opened."""
        ...


SOURCES: dict[str, type[TrainingSource]] = {"heatmaps": HeatmapSource, "keypoints": KeypointSource}
# train/config.py SOURCES names them for the CLI without importing torch (tests/test_onfly.py keeps both equal)

RENDERER_CHOICES = ("auto", *RENDERERS)


def resolve_renderer(renderer: str, device: torch.device) -> str:
    """auto: torch on CUDA (the loader then ships keypoints only), numba kernels in the workers otherwise."""
    if renderer not in RENDERER_CHOICES:
        raise ActrecError(f"--renderer must be one of {', '.join(RENDERER_CHOICES)}, not {renderer!r}")
    if renderer == "auto":
        return "torch" if device.type == "cuda" else "numba"
    return renderer


def open_source(source: str, path: str | Path, spec: RenderSpec | None = None) -> TrainingSource:
    """The store of `--source` at `path` (rendered with `spec` where the source renders)."""
    if source not in SOURCES:
        raise ActrecError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    return SOURCES[source].open(path, spec)
