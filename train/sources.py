"""Where training clips come from (`--source`), and how a loader batch becomes the model input.

heatmaps:  the cached, versioned heatmap store; train views are the stored maps cropped/flipped on the device
           (train/augment.py).
keypoints: a keypoint store, rendered on the fly after PoseC3D's coordinate-space augmentation
           (train/keypoint_data.py), by the numba kernels in the loader workers or by torch on the device.
Both give the same fixed validation views (the store's values).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from etl.errors import ActrecError
from etl.heatmap_store import HeatmapStore
from etl.heatmaps.spec import RenderSpec
from train.augment import random_resized_crop_flip, resize, to_model_input
from train.config import SOURCES
from train.data import HeatmapClips
from train.keypoint_data import KeypointClips, KeypointSource
from train.render_torch import quantize_like, render_torch

RENDERER_CHOICES = ("auto", "numba", "torch")


def resolve_renderer(renderer: str, device: torch.device) -> str:
    """auto: torch on CUDA (the loader then ships keypoints only), numba kernels in the workers otherwise."""
    if renderer not in RENDERER_CHOICES:
        raise ActrecError(f"--renderer must be one of {', '.join(RENDERER_CHOICES)}, not {renderer!r}")
    if renderer == "auto":
        return "torch" if device.type == "cuda" else "numba"
    return renderer


def open_source(source: str, path: str, spec: RenderSpec | None = None) -> HeatmapStore | KeypointSource:
    """The store of `--source`: a HeatmapStore, or a KeypointSource rendered with `spec`."""
    if source == "heatmaps":
        return HeatmapStore.open(path)
    if source == "keypoints":
        return KeypointSource(path, spec or RenderSpec())
    raise ActrecError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")


def clip_dataset(
    store: HeatmapStore | KeypointSource,
    rows: pd.DataFrame,
    *,
    clip_len: int,
    train: bool,
    num_clips: int = 1,
    seed: int = 0,
    input_size: int = 0,
    augment: bool = True,
    renderer: str = "numba",
):
    """The Dataset of `rows` (a clip-table selection) for either source; items are (views, label)."""
    index, labels = rows.index.to_numpy(), rows["label"].to_numpy()
    if isinstance(store, KeypointSource):
        return KeypointClips(
            store,
            index,
            labels,
            clip_len=clip_len,
            train=train,
            num_clips=num_clips,
            seed=seed,
            input_size=input_size,
            augment=augment,
            renderer=renderer,
        )
    return HeatmapClips(
        store.path, index, labels, clip_len=clip_len, train=train, num_clips=num_clips, seed=seed
    )


@dataclass
class TrainInput:
    """Loader batch -> (B, C, T, input_size, input_size) float32 model input on `device`."""

    device: torch.device
    scale: float
    input_size: int
    augment: bool
    flip_permutation: list[int] | None
    keypoints: bool = False  # the dataset already augmented (keypoint source)
    renderer: str = "numba"
    spec: RenderSpec | None = None  # for the torch renderer: how to draw
    limbs: list[tuple[int, int]] | None = None  # for the torch renderer: the limbs drawn (spec.limbs(layout))

    def __call__(self, views, generator: torch.Generator) -> torch.Tensor:
        if self.keypoints and self.renderer == "torch":
            return resize(self._render(views), self.input_size)  # the identity unless augment is off
        x = to_model_input(views.to(self.device, non_blocking=True)[:, 0], self.scale)  # (B, C, T, S, S)
        if self.augment and not self.keypoints:  # keypoint views arrive augmented, at the input size
            return random_resized_crop_flip(
                x, size=self.input_size, flip_permutation=self.flip_permutation, generator=generator
            )
        return resize(x, self.input_size)

    def _render(self, batch) -> torch.Tensor:
        kp, sc = (t.to(self.device, non_blocking=True) for t in batch)
        spec = self.spec
        size = self.input_size if self.augment else spec.size
        x = render_torch(
            kp,
            sc,
            (size, size),
            with_joints=spec.with_joints,
            limbs=self.limbs,
            sigma=spec.sigma,
            eps=spec.eps,
        )
        x = quantize_like(x, spec.dtype)  # the values the numba path ships (and evaluation reads)
        return x.to(torch.bfloat16) if self.device.type == "cuda" else x


def train_input(
    store: HeatmapStore | KeypointSource,
    *,
    device: torch.device,
    scale: float,
    input_size: int,
    augment: bool,
    renderer: str,
) -> Callable[[object, torch.Generator], torch.Tensor]:
    if not isinstance(store, KeypointSource):
        return TrainInput(device, scale, input_size, augment, store.flip_permutation)
    spec = store.spec
    return TrainInput(
        device, scale, input_size, augment, None, True, renderer, spec, spec.limbs(store.layout)
    )
