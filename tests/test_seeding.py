"""One seeding idiom: seeds derived from (seed, stream, keys), independent across streams and keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from train.seeding import STREAMS, derived_seed, numpy_rng, torch_generator


def test_the_same_inputs_give_the_same_draws():
    assert derived_seed(3, "clip", 1, 7) == derived_seed(3, "clip", 1, 7)
    assert numpy_rng(3, "clip", 1, 7).randint(1 << 30) == numpy_rng(3, "clip", 1, 7).randint(1 << 30)
    a = torch.rand(4, generator=torch_generator(3, "augment", 2, 0))
    assert torch.equal(a, torch.rand(4, generator=torch_generator(3, "augment", 2, 0)))


def test_streams_seeds_epochs_and_keys_never_collide():
    # the old idiom seed*1000+epoch collided: (seed 0, epoch 1000) == (seed 1, epoch 0)
    seeds = {
        derived_seed(seed, stream, epoch, key)
        for seed in range(3)
        for stream in STREAMS
        for epoch in (0, 1, 1000)
        for key in (0, 1, 7919)
    }
    assert len(seeds) == 3 * len(STREAMS) * 3 * 3
    assert derived_seed(0, "model", 1000) != derived_seed(1, "model", 0)


def test_keys_order_matters_and_an_unknown_stream_is_refused():
    assert derived_seed(0, "clip", 1, 2) != derived_seed(0, "clip", 2, 1)
    with pytest.raises(ValueError, match="not in tuple"):
        derived_seed(0, "dropout", 1)
    assert (
        0 <= derived_seed(2**40, "init") < 2**32
    )  # any int seed maps into the 32-bit range torch/numpy take
    assert isinstance(numpy_rng(0, "clip", 0, 0), np.random.RandomState)


def test_numpy_rng_draws_what_a_fresh_random_state_draws_after_any_earlier_use():
    """numpy_rng re-seeds one RandomState per thread (a fresh one costs ~100x more): whatever the thread drew
    before, including Gaussians (RandomState caches the second value of each pair), the draws are a fresh
    RandomState's."""
    fresh = np.random.RandomState(derived_seed(5, "clip", 2, 9))
    expected = (fresh.randint(1 << 30, size=3), fresh.uniform(size=2), fresh.normal(size=3))
    used = numpy_rng(1, "clip", 0, 0)
    used.normal(size=1)  # leaves a cached Gaussian behind
    rng = numpy_rng(5, "clip", 2, 9)
    got = (rng.randint(1 << 30, size=3), rng.uniform(size=2), rng.normal(size=3))
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)
