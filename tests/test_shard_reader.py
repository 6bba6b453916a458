"""The fast shard reader returns exactly what zarr returns, for every codec the renderer writes."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
import zarr

from etl.commands.render import render
from etl.common.errors import ActrecError
from etl.stores.heatmap_store import HeatmapStore
from etl.stores.shard_reader import ShardedFrameReader


def _check_all_frames(store_path):
    hm = HeatmapStore.open(store_path)
    reader = ShardedFrameReader.open(store_path / "heatmaps")
    assert reader is not None
    everything = hm.heatmaps[:]  # (F, C, S, S) through zarr
    np.testing.assert_array_equal(reader.read(np.arange(len(everything))), everything)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(everything), 200)  # unordered, with repeats, padding frames included
    np.testing.assert_array_equal(reader.read(picks), everything[picks])


def test_reader_equals_zarr_on_the_default_store(heatmap_store):
    _check_all_frames(heatmap_store)


@pytest.mark.parametrize(("codec", "dtype"), [("zstd", "uint8"), ("none", "uint8"), ("lz4", "float16")])
def test_reader_equals_zarr_for_other_codecs(keypoint_store, small_render, tmp_path, codec, dtype):
    out = tmp_path / "hm.zarr"
    render(keypoint_store, out, replace(small_render, codec=codec, dtype=dtype, level=3))
    _check_all_frames(out)


def test_read_clip_uses_the_fast_path(heatmap_store):
    hm = HeatmapStore.open(heatmap_store)
    frames = np.array([5, 0, 0, 2])
    np.testing.assert_array_equal(
        hm.read_clip(1, frames), hm.heatmaps[hm.clip_start[1] : hm.clip_start[1] + 6][frames]
    )
    assert isinstance(hm._reader, ShardedFrameReader)


def test_foreign_layouts_are_declined(tmp_path):
    plain = zarr.create_array(str(tmp_path / "plain"), shape=(8, 2, 4, 4), chunks=(4, 2, 4, 4), dtype="uint8")
    plain[:] = 1
    assert ShardedFrameReader.open(tmp_path / "plain") is None
    assert ShardedFrameReader.open(tmp_path / "missing") is None


def test_damaged_chunk_is_an_error_naming_the_file(heatmap_store, tmp_path):
    store = tmp_path / "hm.zarr"
    shutil.copytree(heatmap_store, store)
    shard = store / "heatmaps" / "c" / "0" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[10] ^= 0xFF
    shard.write_bytes(bytes(data))
    reader = ShardedFrameReader.open(store / "heatmaps")
    with pytest.raises(ActrecError, match="fails its checksum"):
        reader.read(np.arange(4))
