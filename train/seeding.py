"""Every random draw of a run comes from (seed, stream, keys...): one idiom, no magic offsets.

A stream names what the draw is for, so two streams never share numbers even at equal keys; the keys say
which epoch / clip / rank. Because nothing depends on how many draws came before, a run resumed at epoch e
draws exactly what an uninterrupted one draws there, whatever the worker count.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

STREAMS = (
    "init",  # model initialisation (the global torch RNG, once)
    "model",  # dropout and other in-model draws during epoch e (the global torch RNG, reseeded per epoch)
    "augment",  # on-device augmentation of batches in epoch e on rank r
    "shuffle",  # the clip order of epoch e (the same on every rank; each takes its own slice)
    "clip",  # frame sampling and keypoint-space augmentation of clip row in epoch e
    "loader",  # the DataLoader's own base seed (workers draw nothing from it: the datasets use "clip")
)


def derived_seed(seed: int, stream: str, *keys: int) -> int:
    """A 32-bit seed for `stream` at `keys` (e.g. epoch, clip row), independent of every other (stream, keys)."""
    return int(
        np.random.SeedSequence([int(seed), STREAMS.index(stream), *map(int, keys)]).generate_state(1)[0]
    )


def torch_generator(seed: int, stream: str, *keys: int) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, stream, *keys))


_THREAD = threading.local()


def numpy_rng(seed: int, stream: str, *keys: int) -> np.random.RandomState:
    """This thread's RandomState, re-seeded for (seed, stream, keys): the draws of a fresh RandomState(seed).

    Re-seeding costs ~1.4 us where constructing one costs ~120 us (it seeds itself from OS entropy first), half of
    a graph-network training sample's loader time (docs/benchmarks.md). So the state is valid until this thread's
    next call: a caller finishes one clip's draws before asking for the next clip's (every data source does).
    """
    rng = getattr(_THREAD, "rng", None)
    if rng is None:
        rng = _THREAD.rng = np.random.RandomState()
    rng.seed(derived_seed(seed, stream, *keys))
    return rng
