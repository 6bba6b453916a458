"""Render memory is bounded by a piece of whole shards whatever the clip lengths (issue #25): a long clip's
partition is rendered and written piece by piece, with bytes, boxes and checksums equal to one whole piece; a
clip whose partition would not fit in a memory cap (`prlimit --as`) renders and verifies under it, and a
render that still runs out of memory says so in one line naming the clip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_pose import write_keypoint_store

import etl.commands.render
from etl.commands.render import render
from etl.heatmaps.clip import render_clip
from etl.heatmaps.spec import RenderSpec
from etl.pose.clip import PoseClip
from etl.pose.skeleton import get_layout
from etl.stores.heatmap_store import HeatmapStore, clip_checksum, plan_layout
from etl.stores.keypoint_store import KeypointStore
from etl.stores.verify import verify_store


def _keypoint_store(path: Path, lengths: list[int], *, persons: int = 2) -> Path:
    """A sealed coco17 keypoint store with one clip per entry of `lengths` (frames), random poses that move
    (so every frame differs), some joints missing (NaN, score 0) and scores below 1."""
    rng = np.random.default_rng(7)
    clips = []
    for i, t in enumerate(lengths):
        drift = np.linspace(0, 150, t, dtype=np.float32)[None, :, None, None]  # (1, T, 1, 1)
        kps = (rng.random((persons, t, 17, 2)) * 200 + 50 + drift).astype(np.float32)  # (M, T, V, 2)
        scores = rng.uniform(0.2, 1.0, (persons, t, 17)).astype(np.float32)  # (M, T, V)
        missing = rng.random((persons, t, 17)) < 0.1
        kps[missing] = np.nan
        scores[missing] = 0
        clips.append(PoseClip(f"c{i:03d}", kps, scores, "a", "train", 480, 640, "x", "y"))
    return write_keypoint_store(path, clips)


def _files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


# 8-frame chunks, 2 chunks a shard: clips of 70 and 130 frames span 5 and 9 shards, each one partition
SPEC = RenderSpec(size=24, frames_per_chunk=8, chunks_per_shard=2)
LENGTHS = [5, 70, 3, 130, 20, 9, 16, 1, 33]


def test_pieces_write_the_same_bytes_as_one_whole_partition(tmp_path, monkeypatch):
    kp = _keypoint_store(tmp_path / "kp.zarr", LENGTHS)
    _, parts, _ = plan_layout(np.array(LENGTHS), SPEC.frames_per_chunk, SPEC.chunks_per_shard)
    shard = SPEC.frames_per_chunk * SPEC.chunks_per_shard
    assert max(p.frame_hi - p.frame_lo for p in parts) >= 8 * shard  # a partition several pieces long
    stores = {}
    for piece_shards in (1, 3, 10**6):  # one shard a piece (the default), a few, the whole partition at once
        monkeypatch.setattr(etl.commands.render, "PIECE_SHARDS", piece_shards)
        stores[piece_shards] = render(kp, tmp_path / f"hm{piece_shards}.zarr", SPEC, threads=2)
    assert (
        etl.commands.render.PIECE_SHARDS == 10**6
    )  # the monkeypatch reached the partitions (threads read it)
    whole = _files(stores[10**6].out)
    assert any(k.startswith("heatmaps/c/") for k in whole)
    for piece_shards in (1, 3):
        files = _files(stores[piece_shards].out)
        assert files.keys() == whole.keys()
        differ = [k for k in files if files[k] != whole[k]]
        assert not differ, (piece_shards, differ)
    # and each clip is what render_clip draws, with today's per-clip checksum of all its frames
    hm, keypoints = HeatmapStore.open(stores[1].out), KeypointStore.open(kp)
    for i in range(len(LENGTHS)):
        kps, scores = keypoints.read_clip(i)
        expected, box = render_clip(kps, scores, (480, 640), SPEC, keypoints.layout)
        frames = hm.read_clip(i)
        np.testing.assert_array_equal(frames, expected)
        np.testing.assert_array_equal(hm.group["crop_boxes"][i], box)
        assert int(hm.group["checksums"][i]) == clip_checksum(expected)
    assert verify_store(stores[1].out).ok


def test_the_default_piece_is_one_shard():
    assert etl.commands.render.PIECE_SHARDS == 1


# Runs the CLI with PIECE_SHARDS set (sys.argv[1]) and reports the process's peak address space at exit.
_CLI = """
import atexit, sys
import etl.commands.render
def peak():
    kb = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmPeak:")]
    sys.stderr.write(f"VmPeak {kb[0]}\\n")
atexit.register(peak)
etl.commands.render.PIECE_SHARDS = int(sys.argv[1])
from etl.cli import app
sys.argv = ["actrec-etl", *sys.argv[2:]]
app()
"""


def _cli(piece_shards: int, *args: str, cap: int | None = None) -> tuple[int, str, int]:
    """(exit status, stderr, peak address space in bytes) of the CLI run in a subprocess, under `prlimit
    --as=cap` when cap is given. Two malloc arenas: the peak then varies by a few MiB between runs."""
    cmd = [sys.executable, "-c", _CLI, str(piece_shards), *args]
    if cap is not None:
        cmd = ["prlimit", f"--as={cap}", *cmd]
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "COLUMNS": "200"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    peaks = [int(line.split()[1]) * 1024 for line in proc.stderr.splitlines() if line.startswith("VmPeak ")]
    return proc.returncode, proc.stderr, peaks[-1] if peaks else 0


@pytest.mark.slow
def test_a_clip_longer_than_the_memory_cap_renders_and_verifies_under_prlimit(tmp_path):
    if shutil.which("prlimit") is None:
        pytest.fail("prlimit (util-linux) is needed for this test")
    # one clip of 3650 frames: 34 channels x 64 x 64 uint8 = 136 KiB a frame, a 485 MiB partition buffer, in
    # 64-frame shards (9 MiB); two short clips around it
    kp = _keypoint_store(tmp_path / "kp.zarr", [20, 3650, 9], persons=1)
    frame_bytes = len(get_layout("coco17").channel_names("joints+limbs")) * 64 * 64
    render_args = ["render", str(kp), "--size", "64", "--frames-per-chunk", "16", "--chunks-per-shard", "4",
                   "--threads", "1"]  # fmt: skip
    rc, err, peak = _cli(1, *render_args, "--out", str(tmp_path / "free.zarr"))
    assert rc == 0, err[-2000:]
    assert peak > 0
    cap = peak + 256 * 2**20  # half the long clip's partition buffer above what a render by pieces needs
    assert 3650 * frame_bytes > cap - peak + 200 * 2**20
    # the whole partition at once (the render before #25) does not fit: one line naming the clip, no traceback
    rc, err, _ = _cli(10**6, *render_args, "--out", str(tmp_path / "whole.zarr"), cap=cap)
    assert rc != 0
    assert "error: out of memory rendering clip c001" in err, err[-2000:]
    assert "free memory, or render with fewer --threads" in err
    assert "Traceback" not in err
    assert "MemoryError" not in err
    assert not (tmp_path / "whole.zarr").exists()
    # by pieces it renders under the cap, and the store verifies and equals the one rendered without a cap
    out = tmp_path / "capped.zarr"
    rc, err, peak_capped = _cli(1, *render_args, "--out", str(out), cap=cap)
    assert rc == 0, err[-2000:]
    assert peak_capped <= cap
    rc, err, _ = _cli(1, "verify", str(out))
    assert rc == 0, err[-2000:]
    assert _files(out) == _files(tmp_path / "free.zarr")
