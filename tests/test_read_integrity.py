"""What verify rejects the training read path refuses too (issue 25), locks keyed on a store's real path, a
replaced store reported as replaced, and locks that a crashed fit's loader workers do not keep (issue 26).
Each test here failed before the change it covers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zarr
from fixtures_train import tiny
from typer.testing import CliRunner

from etl.commands.render import render
from etl.common.errors import ActrecError
from etl.common.locks import exclusive_lock, lock_path, shared_lock
from etl.stores.heatmap_store import HeatmapStore
from etl.stores.shard_reader import ShardedFrameReader
from etl.stores.verify import verify_store

runner = CliRunner()


@pytest.fixture
def hm(heatmap_store, tmp_path) -> Path:
    path = tmp_path / "hm.zarr"
    shutil.copytree(heatmap_store, path)
    return path


@pytest.fixture(scope="module")
def trained(heatmap_store, tmp_path_factory) -> Path:
    """A one-epoch tiny run on the intact store: the checkpoint that evaluate reads the damaged copies with."""
    from train.fit import fit

    run = tmp_path_factory.mktemp("run")
    fit(tiny(heatmap_store, run, epochs=1), log=lambda *_: None)
    return run / "last.pt"


def _shard(store: Path, i: int) -> Path:
    return store / "heatmaps" / "c" / str(i) / "0" / "0" / "0"


def _swap_shards(store: Path, a: int = 0, b: int = 1) -> None:
    """Two intact shard files trade places: every chunk crc32c and shard index still checks out."""
    tmp = _shard(store, a).with_name("swap")
    os.replace(_shard(store, a), tmp)
    os.replace(_shard(store, b), _shard(store, a))
    os.replace(tmp, _shard(store, b))


def _rewrite_first_frame(store: Path, clip: int = 0) -> str:
    """Rewrite one chunk of clip `clip` through zarr: a valid chunk with a correct crc32c and shard index."""
    hm = HeatmapStore.open(store)
    start = int(hm.clip_start[clip])
    arr = zarr.open_array(str(store / "heatmaps"), mode="r+")
    frame = arr[start : start + 1]  # (1, C, S, S)
    arr[start : start + 1] = 255 - frame
    return str(hm.table["clip_id"].iat[clip])


def _swap_clip_shards(store: Path, clip: int = 0) -> None:
    """Swap the first shard of clip `clip` with the first shard of the next clip."""
    hm = HeatmapStore.open(store)
    shard_frames = hm.heatmaps.shards[0]
    _swap_shards(
        store, int(hm.clip_start[clip]) // shard_frames, int(hm.clip_start[clip + 1]) // shard_frames
    )


DAMAGE = {"swapped shards": _swap_clip_shards, "rewritten chunk": _rewrite_first_frame}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_verify_sees_is_refused_by_the_read_path(hm, damage):
    DAMAGE[damage](hm)
    assert not verify_store(hm).ok
    store = HeatmapStore.open(hm)  # the metadata is intact: only the frames are not the clips'
    with pytest.raises(ActrecError, match=r"clip \S+ .*does not match its checksum.*actrec-etl verify"):
        store.read_clip(0, np.array([0, 1]))
    # the zarr fallback (a layout the fast path declines) checks the same
    store._reader = False
    with pytest.raises(ActrecError, match=r"does not match its checksum.*actrec-etl verify"):
        store.read_clip(0, np.array([0]))


def test_a_checked_clip_whose_shard_is_swapped_later_is_refused(hm):
    store = HeatmapStore.open(hm)
    first = store.read_clip(
        0, np.array([0, 3])
    )  # checked against the clip's checksum, chunk crc32c remembered
    np.testing.assert_array_equal(store.read_clip(0, np.array([0, 3])), first)  # cheap path, same frames
    _swap_shards(hm)
    with pytest.raises(ActrecError, match="fails its checksum"):  # the cached shard index no longer fits
        store.read_clip(0, np.array([0, 3]))
    store._reader._index.clear()  # a shard index read after the swap: every chunk in it is intact
    with pytest.raises(
        ActrecError, match=r"clip \S+ reads chunk 0 of .* not the chunk its checksum was checked"
    ):
        store.read_clip(0, np.array([0, 3]))


def test_loader_workers_share_the_checked_clips(heatmap_store):
    """A clip checked by one forked worker is known checked to the others (and to the parent)."""
    import copy

    import torch

    from train.sources.heatmaps import HeatmapClips
    from train.sources.loading import EpochSampler, make_loader

    store = HeatmapStore.open(heatmap_store)
    ds = HeatmapClips(heatmap_store, np.arange(len(store)), np.zeros(len(store)), clip_len=4, train=True)
    first_chunks = store.clip_start // store.heatmaps.chunks[0]  # (N,)
    assert all(ds._checked.get(int(c)) is None for c in first_chunks)
    sampler = EpochSampler(len(ds), shuffle=False, pad=False)
    for _ in make_loader(ds, sampler, batch_size=4, workers=2, device=torch.device("cpu")):
        pass
    assert all(ds._checked.get(int(c)) is not None for c in first_chunks)  # filled in by the workers
    private = copy.deepcopy(ds._checked)  # what a spawned worker gets: a copy, not the mapping
    private.clear()
    assert ds._checked.get(int(first_chunks[0])) is not None


def test_a_clip_only_partly_recorded_as_checked_is_checked_again_not_refused(heatmap_store):
    """Another worker's record of a checked clip may be visible here only in part (its first chunk is written
    last, but memory order across cores is the hardware's): such a read checks the clip itself."""
    store = HeatmapStore.open(heatmap_store)
    fb = store.heatmaps.chunks[0]
    clip = int(np.argmax(store.n_frames))  # several chunks
    frames = np.arange(int(store.n_frames[clip]))
    want = store.read_clip(clip, frames)
    first = int(store.clip_start[clip]) // fb
    store._reader._checked._words[first + 1] = 0  # its second chunk's record not seen yet
    np.testing.assert_array_equal(store.read_clip(clip, frames), want)
    assert store._reader._checked.get(first + 1) is not None  # recorded again by the check


def test_read_clip_returns_the_frames_zarr_returns(heatmap_store):
    store = HeatmapStore.open(heatmap_store)
    rng = np.random.default_rng(0)
    for clip in range(len(store)):
        t, start = int(store.n_frames[clip]), int(store.clip_start[clip])
        frames = rng.integers(0, t, 12)  # unordered, repeats
        want = store.heatmaps[start : start + t][frames]
        np.testing.assert_array_equal(store.read_clip(clip, frames), want)  # first read: checked
        np.testing.assert_array_equal(store.read_clip(clip, frames[::-1]), want[::-1])  # later read


def _one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_evaluate_and_fit_refuse_damaged_frames_through_the_cli(hm, trained, tmp_path, damage):
    from train.cli import app

    clip = int(HeatmapStore.open(hm).table.query("split == 'test'").index[0])  # evaluate's and fit's val
    DAMAGE[damage](hm, clip)
    result = runner.invoke(app, ["evaluate", str(trained), str(hm), "--clips", "1", "--device", "cpu"])
    line = _one_error_line(result)  # default --workers (2): the worker's error, one line
    assert str(hm) in line, line
    assert "actrec-etl verify" in line, line
    assert "re-render" in line, line
    fit_args = ["fit", str(hm), "--out", str(tmp_path / "run"), "--model", "c3d", "--preset", "tiny"]
    fit_args += ["--epochs", "1", "--clip-len", "8", "--batch-size", "4", "--device", "cpu"]
    line = _one_error_line(runner.invoke(app, fit_args))
    assert str(hm) in line, line
    assert "actrec-etl verify" in line, line
    assert not (tmp_path / "run" / "last.pt").exists()


# ------------------------------------------------------------------ a replaced store is not a damaged one


def test_a_reader_with_a_cached_index_says_the_store_was_replaced(hm, keypoint_store, small_render, tmp_path):
    reader = ShardedFrameReader.open(hm / "heatmaps")
    reader.read(np.arange(4))  # shard 0's index cached
    other = tmp_path / "other.zarr"
    render(keypoint_store, other, replace(small_render, codec="zstd"))  # same frames, other bytes
    shutil.rmtree(hm)
    os.rename(other, hm)
    with pytest.raises(ActrecError, match=r"was replaced since the reader opened it.*re-open") as info:
        reader.read(np.arange(4))
    assert "damaged" not in str(info.value)


def test_a_keypoint_store_replaced_under_a_reader_says_so(keypoint_store, demo_dir, tmp_path):
    from etl.commands.ingest import ingest
    from etl.pose.skeleton import get_layout
    from etl.readers import ReadOptions
    from etl.stores.keypoint_store import KeypointStore

    kp = tmp_path / "kp.zarr"
    shutil.copytree(keypoint_store, kp)
    store = KeypointStore.open(kp)
    opts = ReadOptions(layout=get_layout("coco17"), labels_csv=demo_dir / "clips.csv")
    clips = sorted((demo_dir / "clips").iterdir())
    ingest(clips[len(clips) // 2 :], out=kp, fmt="coco-json", options=opts, mode="overwrite")  # other clips
    with pytest.raises(ActrecError, match="was replaced since the reader opened it"):
        store.read_range(0, len(store))


# ------------------------------------------------------------------ locks: the real path, never a dead pid


def test_locks_are_keyed_on_the_real_path(tmp_path):
    real = tmp_path / "data" / "kp.zarr"
    real.mkdir(parents=True)
    link = tmp_path / "link.zarr"
    link.symlink_to(real)
    assert lock_path(link) == lock_path(real) == real.with_name("kp.zarr.lock")
    with (
        shared_lock(link, "render"),
        pytest.raises(ActrecError, match="in use right now"),
        exclusive_lock(real, "ingest"),
    ):
        pass
    with (
        exclusive_lock(real, "ingest"),
        pytest.raises(ActrecError, match="being written right now"),
        shared_lock(tmp_path / "data" / ".." / "link.zarr", "render"),  # another spelling, through the link
    ):
        pass


def test_ingest_overwrite_is_refused_while_a_render_reads_through_a_symlink(
    demo_dir, keypoint_store, small_render, tmp_path
):
    from etl.commands.ingest import ingest
    from etl.pose.skeleton import get_layout
    from etl.readers import ReadOptions

    kp = tmp_path / "kp.zarr"
    shutil.copytree(keypoint_store, kp)
    link = tmp_path / "link.zarr"
    link.symlink_to(kp)
    opts = ReadOptions(layout=get_layout("coco17"), labels_csv=demo_dir / "clips.csv")
    with shared_lock(link, "render"), pytest.raises(ActrecError, match="in use right now"):
        ingest([demo_dir / "clips"], out=kp, fmt="coco-json", options=opts, mode="overwrite")
    with exclusive_lock(kp, "ingest"), pytest.raises(ActrecError, match="being written right now"):
        render(link, tmp_path / "hm.zarr", small_render)


_FORKING_HOLDER = """
import os, sys, time
from pathlib import Path
from etl.common.locks import exclusive_lock, shared_lock
out, store, marker = map(Path, sys.argv[1:4])
with exclusive_lock(out, "fit"), shared_lock(store, "fit"):
    if os.fork() == 0:  # a loader worker: outlives its parent for a while
        time.sleep(30)
        os._exit(0)
    marker.write_text("ready")
    time.sleep(600)
"""


def test_a_forked_child_does_not_keep_its_crashed_parents_locks(tmp_path):
    out, store, marker = tmp_path / "run", tmp_path / "hm.zarr", tmp_path / "ready"
    store.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _FORKING_HOLDER, str(out), str(store), str(marker)], env=env
    )
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.02)
    with pytest.raises(ActrecError, match=f"held by pid {proc.pid}"), exclusive_lock(out, "fit"):
        pass  # the live parent holds it, and is named
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with exclusive_lock(out, "fit"), exclusive_lock(store, "render"):  # at once, the child still sleeping
        pass


def test_a_refusal_never_names_a_dead_pid(tmp_path):
    out = tmp_path / "run"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with shared_lock(out, "evaluation"):  # a reader holds the file a crashed writer left its pid in
        lock_path(out).write_text(f"{dead.pid}\n")
        with pytest.raises(ActrecError) as info, exclusive_lock(out, "fit"):
            pass
    assert str(dead.pid) not in str(info.value)
    assert "in use right now" in str(info.value)


# ------------------------------------------------------------------ resume at once after a SIGKILLed fit with workers

_KILLED_FIT_WITH_WORKERS = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from fixtures_train import tiny
from train.fit import fit
store, out, marker = sys.argv[2:5]
def log(line):
    if line.startswith("epoch 2/3:"):  # epoch 2 trained, its checkpoint not written: wait here to be killed
        Path(marker).write_text("ready")
        time.sleep(600)
fit(tiny(store, out, epochs=3, workers=2), log=log)
"""


@pytest.mark.slow
def test_sigkill_with_loader_workers_then_resume_at_once(heatmap_store, tmp_path):
    """The OOM killer's SIGKILL leaves the persistent loader workers alive for seconds; they must not keep the
    run folder's lock (nor the store's), so `--resume` at once works and ends equal to an uninterrupted run."""
    import torch
    from test_train import _weights

    from train.checkpoint import load_checkpoint
    from train.fit import fit

    ref, run, marker = tmp_path / "ref", tmp_path / "run", tmp_path / "ready"
    fit(tiny(heatmap_store, ref, epochs=3), log=lambda *_: None)
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the same float sums as here
    code = [_KILLED_FIT_WITH_WORKERS, str(Path(__file__).parent), str(heatmap_store), str(run), str(marker)]
    proc = subprocess.Popen([sys.executable, "-c", *code], stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), f"the child stopped before epoch 2: {proc.communicate()[1].decode()[-2000:]}"
    workers = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert len(workers) >= 2  # the loader workers that outlive the SIGKILL
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(Path(f"/proc/{w}").exists() for w in workers)  # still there: the case this test is about
    assert load_checkpoint(run / "last.pt")["epoch"] < 2
    lines: list[str] = []
    fit(replace(tiny(heatmap_store, run, epochs=3, workers=2), resume=True), log=lines.append)
    assert any(line.startswith(f"resuming {run / 'last.pt'} at epoch 2/3") for line in lines), lines
    a, b = _weights(ref / "last.pt"), _weights(run / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_clip_check_benchmark_runs_and_reads_the_demo_epochs(heatmap_store):
    """bench_loader's clip-check section: every figure it prints, and its epoch count is the demo's."""
    import yaml
    from fixtures_bench import ROOT, bench_module

    bench = bench_module("bench_loader")
    check = bench.time_clip_check(heatmap_store, runs=1)
    assert set(check) >= {"first_checked", "first_plain", "later_checked", "later_plain", "later_own"}
    assert all(v >= 0 for k, v in check.items() if not k.endswith("_extra"))
    text = "\n".join(bench.clip_check_lines(check))
    assert "| a clip's first read in a run |" in text
    assert yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["epochs"] == bench.DEMO_EPOCHS
