"""What every training source's loader shares: clip selection, the epoch sampler, the loader, its timing, and
the data identity a checkpoint records.

Every random choice is a function of (seed, epoch, clip), never of worker count or order.
"""

from __future__ import annotations

import math
import time

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from etl.common.errors import ActrecError
from etl.stores.cliptable import query_clips
from etl.stores.storeio import SEAL_KEY
from train.seeding import torch_generator


def select_clips(store, where: str | None) -> pd.DataFrame:
    """The clip-table rows matching a pandas query; the index is the clip's row in the store."""
    rows = query_clips(store.table, where)
    if not len(rows):
        raise ActrecError(f"no clip in {store.path} matches {where!r}")
    return rows


def data_identity(attrs: dict) -> dict:
    """What the model learns from: the render settings, the keypoints they were rendered from, and the clip
    table (labels, splits: its sha256 from the store's seal). A checkpoint records it as "data"; resume compares."""
    return {
        "render": attrs["fingerprint"],
        "keypoints": attrs["keypoints"]["content_hash"],
        "clips": attrs[SEAL_KEY]["files"]["clips.parquet"],
    }


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
