"""`--source heatmaps`: the cached, versioned heatmap store as a training source.

Workers only decode: HeatmapClips reads the chunks of the sampled frames and returns uint8 (every random choice a
function of (seed, epoch, clip), never of worker count or order). Float conversion, random resized crop and flip
happen batched on the device (HeatmapInput, with train/sources/heatmap_augment.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from etl.stores.heatmap_store import HeatmapStore
from etl.stores.shard_reader import CheckedChunks
from train.seeding import numpy_rng
from train.sources.heatmap_augment import random_resized_crop_flip
from train.sources.loading import data_identity
from train.sources.sampling import sample_test, sample_train
from train.sources.views import GivesHeatmaps, resize, to_model_input


class HeatmapClips(Dataset):
    """Items are (store row index, epoch) pairs from EpochSampler; returns (views (V, T, C, S, S) uint8, label).

    train=True: one random view per item; train=False: `num_clips` fixed views (PoseC3D test sampling)."""

    def __init__(
        self,
        store_path: str | Path,
        rows: np.ndarray,
        labels: np.ndarray,
        *,
        clip_len: int,
        train: bool,
        num_clips: int = 1,
        seed: int = 0,
    ):
        self.store_path = Path(store_path)
        self.rows = np.asarray(rows, np.int64)
        self.labels = np.asarray(labels, np.int64)
        self.clip_len, self.train, self.num_clips, self.seed = clip_len, train, num_clips, seed
        self._store: HeatmapStore | None = None  # opened lazily, once per DataLoader worker
        # made here, before the loader forks: a clip checked against its checksum by one worker is not re-checked
        self._checked = CheckedChunks.shared_for(self.store_path / "heatmaps")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def store(self) -> HeatmapStore:
        if self._store is None:
            self._store = HeatmapStore.open(self.store_path)
            self._store.checked = self._checked
        return self._store

    def __getitem__(self, item: tuple[int, int] | int):
        i, epoch = item if isinstance(item, tuple) else (item, 0)
        row = int(self.rows[i])
        n_frames = int(self.store.n_frames[row])
        if self.train:
            rng = numpy_rng(self.seed, "clip", epoch, row)
            frames = sample_train(n_frames, self.clip_len, rng)[None]  # (1, T)
        else:
            frames = sample_test(n_frames, self.clip_len, self.num_clips)  # (V, T)
        data = self.store.read_clip(row, frames.ravel())  # (V*T, C, S, S): only the chunks holding them
        views = data.reshape(*frames.shape, *data.shape[1:])  # (V, T, C, S, S)
        return torch.from_numpy(views), int(self.labels[i])


class HeatmapSource(GivesHeatmaps, HeatmapStore):
    """`--source heatmaps` (a TrainingSource): a heatmap store written by `actrec-etl render`, opened for
    training (everything a HeatmapStore has: attrs, table, classes, channels, flip permutation, ...)."""

    name = "heatmaps"

    @classmethod
    def open(cls, path: str | Path, spec=None, coordinates=None) -> HeatmapSource:
        """The store at `path`; its render spec is the store's own (`spec` is not needed)."""
        return super().open(path)

    def identity(self) -> dict:
        return data_identity(self.attrs)

    def describe(self, renderer: str) -> str:
        return ""  # nothing is rendered while training

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
    ) -> HeatmapClips:
        index, labels = rows.index.to_numpy(), rows["label"].to_numpy()
        return HeatmapClips(
            self.path, index, labels, clip_len=clip_len, train=train, num_clips=num_clips, seed=seed
        )

    def train_input(
        self, *, device: torch.device, scale: float, input_size: int, augment: bool, renderer: str
    ) -> HeatmapInput:
        return HeatmapInput(device, scale, input_size, augment, self.flip_permutation)


@dataclass
class HeatmapInput:
    """Loader batch (B, 1, T, C, S, S) uint8/float16 -> (B, C, T, input_size, input_size) float32 model input on
    `device`, randomly cropped, resized and flipped when augmenting."""

    device: torch.device
    scale: float
    input_size: int
    augment: bool
    flip_permutation: list[int] | None

    def __call__(self, views, generator: torch.Generator) -> torch.Tensor:
        x = to_model_input(views.to(self.device, non_blocking=True)[:, 0], self.scale)  # (B, C, T, S, S)
        if self.augment:
            return random_resized_crop_flip(
                x, size=self.input_size, flip_permutation=self.flip_permutation, generator=generator
            )
        return resize(x, self.input_size)
