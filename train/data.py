"""Streaming clips from the heatmap store: a Dataset that reads only the chunks it needs and returns uint8.

Float conversion, random resized crop and flip happen batched on the device (train/augment.py), so the
workers only decode. Every random choice is a function of (seed, epoch, clip), never of worker count or order.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from etl.cliptable import query_clips
from etl.errors import ActrecError
from etl.heatmap_store import HeatmapStore
from etl.shard_reader import CheckedChunks
from train.sampling import sample_test, sample_train
from train.seeding import numpy_rng, torch_generator


def select_clips(store: HeatmapStore, where: str | None) -> pd.DataFrame:
    """The clip-table rows matching a pandas query; the index is the clip's row in the store."""
    rows = query_clips(store.table, where)
    if not len(rows):
        raise ActrecError(f"no clip in {store.path} matches {where!r}")
    return rows


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


class TimedLoader:
    """Iterates a loader and adds up the time spent waiting for its batches (`wait_s`): the data-wait share of
    a step. On CUDA the step ends in a host sync (loss.item()), so the rest of the step is device work."""

    def __init__(self, loader):
        self.loader = loader
        self.wait_s = 0.0

    def __iter__(self):
        it = iter(self.loader)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            self.wait_s += time.perf_counter() - t0
            yield batch


class EpochSampler(Sampler):
    """Yields (index, epoch): a seeded permutation per epoch (or the plain order), split across DDP ranks.

    Like DistributedSampler, the order is padded by repetition so every rank gets the same number of items."""

    def __init__(
        self, n: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1, pad: bool = True
    ):
        self.n, self.shuffle, self.seed, self.rank, self.world_size = n, shuffle, seed, rank, world_size
        self.pad = pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[int]:
        if self.shuffle:
            g = torch_generator(self.seed, "shuffle", self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        if self.pad:
            total = math.ceil(self.n / self.world_size) * self.world_size
            order += order[: total - len(order)]
        return order[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self._order())

    def __iter__(self):
        return iter([(i, self.epoch) for i in self._order()])


def make_loader(
    dataset: Dataset,
    sampler: EpochSampler,
    *,
    batch_size: int,
    workers: int,
    device: torch.device,
    seed: int = 0,
    collate_fn=None,
) -> DataLoader:
    # A seeded generator of its own: otherwise each new iterator draws its base seed from the global torch RNG,
    # which happens once per process with persistent workers but once per epoch without, so dropout masks
    # (and a resumed run) would depend on the worker count. The datasets draw from (seed, epoch, clip) only.
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        drop_last=False,
        generator=torch_generator(seed, "loader"),
        collate_fn=collate_fn,
    )
