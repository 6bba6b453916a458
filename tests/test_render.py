"""Render end to end: the heatmap store's layout and content, determinism, resume after SIGKILL, locking,
distributed rendering, verify and show."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from typer.testing import CliRunner

from etl.cli import app
from etl.commands.render import render
from etl.common.errors import ActrecError
from etl.common.locks import exclusive_lock
from etl.heatmaps.clip import render_clip
from etl.heatmaps.spec import RenderSpec
from etl.stores.heatmap_store import HeatmapStore
from etl.stores.keypoint_store import KeypointStore
from etl.stores.verify import verify_store

runner = CliRunner()


def _files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def test_store_layout_and_attrs(heatmap_store, keypoint_store, small_render):
    hm, kp = HeatmapStore.open(heatmap_store), KeypointStore.open(keypoint_store)
    attrs = hm.attrs
    assert attrs["complete"] is True
    assert attrs["format_version"] == 3
    # the spec once, under "render": none of its fields repeated flat (format_version 2 had them twice)
    assert hm.spec == small_render
    assert attrs["render"] == asdict(small_render)
    assert not set(attrs) & {f.name for f in fields(RenderSpec)} - {"channels"}
    assert "channel_preset" not in attrs
    assert len(hm.channels) == 34
    assert hm.channels[0] == "joint:nose"
    assert hm.channels[17] == "limb:nose-left_shoulder"
    assert sorted(hm.flip_permutation) == list(range(34))
    assert hm.flip_permutation[1] == 2
    assert attrs["keypoints"]["content_hash"] == kp.attrs["content_hash"]
    assert attrs["quantisation"]["max_abs_error"] == pytest.approx(1 / 510)
    assert hm.heatmaps.dtype == np.uint8
    assert hm.heatmaps.shape[1:] == (34, 32, 32)
    assert hm.heatmaps.chunks[0] == small_render.frames_per_chunk
    assert (hm.clip_start % small_render.frames_per_chunk == 0).all()
    assert (np.diff(hm.clip_start) >= hm.n_frames[:-1]).all()  # clips never overlap
    boxes = hm.group["crop_boxes"][:]
    assert boxes.shape == (len(kp), 4)
    assert (boxes[:, 2] > boxes[:, 0]).all()
    pd.testing.assert_frame_equal(hm.table, kp.table)
    # sharded: far fewer files than chunks
    n_chunks = -(-hm.heatmaps.shape[0] // small_render.frames_per_chunk)
    n_files = sum(p.is_file() for p in (heatmap_store / "heatmaps").rglob("*"))
    assert n_files < n_chunks / 2


def test_store_holds_exactly_what_the_kernels_render(heatmap_store, keypoint_store, small_render):
    hm, kp = HeatmapStore.open(heatmap_store), KeypointStore.open(keypoint_store)
    for i in range(len(kp)):
        kps, scores = kp.read_clip(i)
        hw = (int(kp.table.img_h.iat[i]), int(kp.table.img_w.iat[i]))
        expected, box = render_clip(kps, scores, hw, small_render, kp.layout)
        np.testing.assert_array_equal(hm.read_clip(i), expected)
        np.testing.assert_array_equal(hm.group["crop_boxes"][i], box)
    # frame selection reads the same values as a full read
    frames = np.array([0, 3, 3, 1])
    np.testing.assert_array_equal(hm.read_clip(2, frames), hm.read_clip(2)[frames])


def test_output_bytes_do_not_depend_on_thread_count(keypoint_store, heatmap_store, small_render, tmp_path):
    render(keypoint_store, tmp_path / "one.zarr", small_render, threads=1)
    one, four = _files(tmp_path / "one.zarr"), _files(heatmap_store)
    assert one.keys() == four.keys()
    assert all(one[k] == four[k] for k in one)


def test_existing_store_and_concurrent_render_are_refused(
    keypoint_store, heatmap_store, small_render, tmp_path
):
    with pytest.raises(ActrecError, match="--overwrite"):
        render(keypoint_store, heatmap_store, small_render)
    out = tmp_path / "hm.zarr"
    with exclusive_lock(out, "render"), pytest.raises(ActrecError, match="another render is writing"):
        render(keypoint_store, out, small_render)
    assert not out.exists()
    render(keypoint_store, out, small_render)
    assert out.exists()
    assert not (tmp_path / "hm.zarr.lock").exists()  # the lock file goes with the lock


def _start_cli_render(kp: Path, out: Path, *extra: str) -> subprocess.Popen:
    code = "from etl.cli import app; app()"
    cmd = [
        sys.executable,
        "-c",
        code,
        "render",
        str(kp),
        "--out",
        str(out),
        "--size",
        "32",
        "--frames-per-chunk",
        "8",
        "--chunks-per-shard",
        "2",
        "--threads",
        "1",
        *extra,
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_mid_render_then_rerun_equals_an_uninterrupted_run(demo_dir, tmp_path, keypoint_store):
    out = tmp_path / "hm.zarr"
    progress = tmp_path / "hm.zarr.partial" / "_progress"
    proc = _start_cli_render(keypoint_store, out)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(progress.glob("*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = len(list(progress.glob("*.json")))
    assert not out.exists(), "killed before the end: the store must not look complete"
    assert done_at_kill >= 2
    total = len(list(zarr.open_group(str(tmp_path / "hm.zarr.partial"), mode="r")["clip_start"][:]))
    assert total > 0

    resumed = runner.invoke(
        app,
        [
            "render",
            str(keypoint_store),
            "--out",
            str(out),
            "--size",
            "32",
            "--frames-per-chunk",
            "8",
            "--chunks-per-shard",
            "2",
            "--threads",
            "2",
        ],
    )
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from an earlier run" in resumed.output

    ref = tmp_path / "ref.zarr"
    result = runner.invoke(
        app,
        [
            "render",
            str(keypoint_store),
            "--out",
            str(ref),
            "--size",
            "32",
            "--frames-per-chunk",
            "8",
            "--chunks-per-shard",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    a, b = _files(out), _files(ref)
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)
    assert verify_store(out).ok


def test_a_partial_render_with_other_settings_is_started_over(keypoint_store, small_render, tmp_path):
    out = tmp_path / "hm.zarr"
    render(keypoint_store, out, small_render)
    os.rename(out, tmp_path / "hm.zarr.partial")  # pretend: an unfinished run with other settings
    report = render(keypoint_store, out, replace(small_render, sigma=0.8))
    assert report.resumed_partitions == 0
    assert HeatmapStore.open(out).spec.sigma == 0.8


@pytest.mark.slow
def test_dask_distributed_render_is_bitwise_equal_to_local(
    keypoint_store, heatmap_store, small_render, tmp_path
):
    from distributed import LocalCluster

    # LocalCluster writes OMP_NUM_THREADS=1 (and more) into os.environ; put it back so that subprocesses
    # started by later tests (the resume test compares float sums) see the usual thread count.
    environ = dict(os.environ)
    try:
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            render(keypoint_store, tmp_path / "dist.zarr", small_render, scheduler=cluster.scheduler_address)
    finally:
        os.environ.clear()
        os.environ.update(environ)
    dist, local = _files(tmp_path / "dist.zarr"), _files(heatmap_store)
    assert dist.keys() == local.keys()
    assert all(dist[k] == local[k] for k in dist)


@pytest.mark.slow
def test_unreachable_scheduler_is_a_clear_error(keypoint_store, small_render, tmp_path):
    with pytest.raises(ActrecError, match="cannot reach the dask scheduler"):
        render(keypoint_store, tmp_path / "x.zarr", small_render, scheduler="tcp://127.0.0.1:9")


def test_verify_names_the_damaged_clips(heatmap_store, tmp_path):
    import shutil

    store = tmp_path / "hm.zarr"
    shutil.copytree(heatmap_store, store)
    assert verify_store(store).ok
    hm = HeatmapStore.open(store)
    shard_frames = hm.heatmaps.shards[0]
    target = 3  # damage a byte inside the first chunk of clip 3
    shard_key = int(hm.clip_start[target]) // shard_frames
    shard = store / "heatmaps" / "c" / str(shard_key) / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[40] ^= 0xFF
    shard.write_bytes(bytes(data))
    report = verify_store(store)
    bad = {cid for cid, _ in report.bad}
    in_shard = {
        hm.table.clip_id.iat[i] for i in range(len(hm)) if hm.clip_start[i] // shard_frames == shard_key
    }
    assert bad
    assert bad <= in_shard  # the damage is reported, and only where it is
    result = runner.invoke(app, ["verify", str(store)])
    assert result.exit_code == 1
    assert "damaged" in result.output


def test_show_writes_a_filmstrip(heatmap_store, tmp_path):
    clip = HeatmapStore.open(heatmap_store).table.clip_id.iat[0]
    result = runner.invoke(app, ["show", str(heatmap_store), clip, "--out", str(tmp_path / "f.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "f.png").stat().st_size > 5000
    missing = runner.invoke(app, ["show", str(heatmap_store), "nope", "--out", str(tmp_path / "g.png")])
    assert missing.exit_code == 1
    assert "not in" in missing.output


@pytest.mark.shared
@pytest.mark.slow
def test_penn_action_renders_27_channels(shared_dir, tmp_path):
    from etl.commands.ingest import ingest
    from etl.heatmaps.spec import RenderSpec
    from etl.pose.skeleton import get_layout
    from etl.readers import ReadOptions

    kp = tmp_path / "penn.zarr"
    labels = sorted((shared_dir / "data" / "penn_action" / "labels").glob("*.mat"))[::40]  # 59 clips
    ingest(labels, out=kp, fmt="penn-action", options=ReadOptions(layout=get_layout("penn13")))
    render(kp, tmp_path / "hm.zarr", RenderSpec(channels="joints+limbs", size=48))
    hm = HeatmapStore.open(tmp_path / "hm.zarr")
    assert len(hm.channels) == 27
    assert hm.heatmaps.shape[1:] == (27, 48, 48)
    assert verify_store(tmp_path / "hm.zarr").ok
    # the first clips' heatmaps are not empty: every frame has some joint drawn
    clip = hm.read_clip(0)
    assert (clip.reshape(len(clip), -1).max(axis=1) > 200).all()


def test_rerender_after_reingest_in_the_same_process(demo_dir, keypoint_store, small_render, tmp_path):
    """Open keypoint stores are cached per process (dask workers live long): a store re-ingested at the same
    path must not be served from the cache."""
    import shutil

    from etl.commands.ingest import ingest
    from etl.pose.skeleton import get_layout
    from etl.readers import ReadOptions

    kp = tmp_path / "kp.zarr"
    shutil.copytree(keypoint_store, kp)
    render(kp, tmp_path / "a.zarr", small_render)
    fewer = tmp_path / "fewer"
    fewer.mkdir()
    for f in sorted((demo_dir / "clips").glob("*.json"))[5:12]:
        shutil.copy(f, fewer / f.name)
    opts = ReadOptions(layout=get_layout("coco17"), labels_csv=demo_dir / "clips.csv")
    ingest([fewer], out=kp, fmt="coco-json", options=opts, mode="overwrite")
    render(kp, tmp_path / "b.zarr", small_render)
    assert len(HeatmapStore.open(tmp_path / "b.zarr")) == 7
    assert verify_store(tmp_path / "b.zarr").ok
