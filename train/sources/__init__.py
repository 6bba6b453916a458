"""Where training clips come from (`--source`): one protocol, one class per kind, chosen by name in SOURCES.

heatmaps:  the cached, versioned heatmap store; train views are the stored maps cropped/flipped on the device
           (train/sources/heatmaps.py, heatmap_augment.py).
keypoints: a keypoint store, rendered on the fly after PoseC3D's coordinate-space augmentation
           (train/sources/keypoints.py), by the numba kernels in the loader workers or by torch on the device.
coordinates: a keypoint store as graph-network input (train/sources/coordinates.py): PYSKL's GCN pipeline,
           (N, M, T, V, C) coordinates of one stream.
The first two give the same fixed validation views (the store's values). Each source declares what it `gives`
("heatmaps" | "coordinates"); a model declares what it `consumes`: check_pairing refuses a mismatch. fit, evaluation and predict call the protocol
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
from train.sources.coordinates import CoordinateSource
from train.sources.heatmaps import HeatmapSource
from train.sources.keypoints import RENDERERS, KeypointSource


class TrainingSource(Protocol):
    """A store opened for training or evaluation, and what the loop needs from it."""

    name: ClassVar[str]  # the `--source` value; saved in checkpoints as "source"
    gives: ClassVar[str]  # "heatmaps" | "coordinates": what models it feeds (their `consumes`)
    fit_fields: ClassVar[tuple[str, ...]]  # the train/config.py COORDINATE_FIELDS it reads
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

    @property
    def value_scale(self) -> float: ...  # what stored values are divided by (1 for float coordinates)

    @property
    def view_size(self) -> int: ...  # the views' pixel size (the recipe's store size); 0 without pixels

    @classmethod
    def open(
        cls, path: str | Path, spec: RenderSpec | None = None, coordinates: dict | None = None
    ) -> TrainingSource:
        """The store at `path`; `spec` is the render spec for a source that renders (the checkpoint's
        or fit's options), `coordinates` the settings of the coordinate source ({"stream", "coords",
        "strong_augment"}); a source ignores what it does not use."""
        ...

    def model_options(self) -> dict:
        """Model config fields the store decides (a graph model's layout), {} for none."""
        ...

    def checkpoint_record(self, input_size: int, clip_len: int) -> dict:
        """How evaluate/predict read data as training did: {"render": ...} or {"coordinates": ...}, saved at
        the top level of checkpoints."""
        ...

    def check_record(self, record: dict, checkpoint: str) -> None:
        """Raise ActrecError if this store, read this way, is not what the checkpoint (`record`) learnt from."""
        ...

    def eval_input(
        self, device: torch.device, scale: float, input_size: int
    ) -> Callable[[object], torch.Tensor]:
        """How an eval loader batch of (B, V, ...) fixed views becomes (B*V, ...) model input on `device`."""
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


SOURCES: dict[str, type[TrainingSource]] = {
    "heatmaps": HeatmapSource,
    "keypoints": KeypointSource,
    "coordinates": CoordinateSource,
}
# train/config.py SOURCES names them for the CLI without importing torch (tests/test_onfly.py keeps both equal)

RENDERER_CHOICES = ("auto", *RENDERERS)


def resolve_renderer(renderer: str, device: torch.device) -> str:
    """auto: torch on CUDA (the loader then ships keypoints only), numba kernels in the workers otherwise."""
    if renderer not in RENDERER_CHOICES:
        raise ActrecError(f"--renderer must be one of {', '.join(RENDERER_CHOICES)}, not {renderer!r}")
    if renderer == "auto":
        return "torch" if device.type == "cuda" else "numba"
    return renderer


# what a model consumes -> how to give it that (check_pairing's advice)
_HOW_TO_GIVE = {
    "heatmaps": "a heatmap store (--source heatmaps) or a keypoint store with --source keypoints",
    "coordinates": "the keypoint store with --source coordinates",
}


def _source_class(source: str) -> type[TrainingSource]:
    if source not in SOURCES:
        raise ActrecError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    return SOURCES[source]


def default_source(consumes: str) -> str:
    """The first source (in SOURCES' order) that gives what a model consumes: `evaluate` without --source reads
    a heatmap model's heatmap store and a graph model's keypoint coordinates."""
    return next(name for name, cls in SOURCES.items() if cls.gives == consumes)


def check_pairing(model_name: str, consumes: str, source: str) -> None:
    """Refuse a model on a source that gives it the wrong kind of input, saying what to give it."""
    gives = _source_class(source).gives
    if gives != consumes:
        raise ActrecError(
            f"model {model_name} trains on {consumes}: pass {_HOW_TO_GIVE[consumes]}, not --source {source} "
            f"(which gives {gives})"
        )


def open_source(
    source: str, path: str | Path, spec: RenderSpec | None = None, coordinates: dict | None = None
) -> TrainingSource:
    """The store of `--source` at `path` (rendered with `spec` where the source renders, read with
    `coordinates` where it gives coordinates)."""
    return _source_class(source).open(path, spec, coordinates)
