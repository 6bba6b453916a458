"""Store integrity under concurrency, damage and interruption (issue 9): what verify passes is what the trainer
reads. Each test here failed before the change it covers."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from fixtures_pose import write_keypoint_store
from fixtures_train import tiny
from typer.testing import CliRunner

from etl.cli import app
from etl.commands.render import PROGRESS_DIR, render
from etl.common.errors import ActrecError, Interrupted
from etl.common.locks import exclusive_lock, shared_lock
from etl.pose.clip import PoseClip
from etl.pose.skeleton import get_layout
from etl.stores.cliptable import CLIPS_FILE
from etl.stores.heatmap_store import HeatmapStore, plan_layout, reading_store
from etl.stores.keypoint_store import KIND, KeypointStore
from etl.stores.verify import verify_store

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


@pytest.fixture
def kp(keypoint_store, tmp_path) -> Path:
    path = tmp_path / "kp.zarr"
    shutil.copytree(keypoint_store, path)
    return path


@pytest.fixture
def hm(heatmap_store, tmp_path) -> Path:
    path = tmp_path / "hm.zarr"
    shutil.copytree(heatmap_store, path)
    return path


def _ingest(src_dir: Path, out: Path, labels_csv: Path, mode: str = "create"):
    from etl.commands.ingest import ingest
    from etl.readers import ReadOptions

    opts = ReadOptions(layout=get_layout("coco17"), labels_csv=labels_csv)
    return ingest([src_dir], out=out, fmt="coco-json", options=opts, mode=mode)


def _verify_cli(store: Path):
    result = runner.invoke(app, ["verify", str(store)])
    assert "Traceback" not in result.output
    return result


# ------------------------------------------------------------------ concurrency: readers lock out writers


def test_reingest_is_refused_while_a_render_reads_the_store(demo_dir, kp):
    with shared_lock(kp, "render"), pytest.raises(ActrecError, match="in use right now"):
        _ingest(demo_dir / "clips", kp, demo_dir / "clips.csv", mode="overwrite")
    _ingest(demo_dir / "clips", kp, demo_dir / "clips.csv", mode="overwrite")  # free again afterwards


def test_render_holds_a_shared_lock_on_its_input(kp, small_render, tmp_path, monkeypatch):
    import etl.commands.render as render_mod

    seen = []
    real = render_mod._run_partitions

    def probe(*args, **kw):
        with pytest.raises(ActrecError, match="in use right now"), exclusive_lock(kp, "ingest"):
            pass
        seen.append(True)
        return real(*args, **kw)

    monkeypatch.setattr(render_mod, "_run_partitions", probe)
    render(kp, tmp_path / "out.zarr", small_render)
    assert seen
    assert not list(tmp_path.glob("*.lock"))  # the last reader out removes the lock file


def test_render_rechecks_its_input_before_publishing(kp, small_render, tmp_path, monkeypatch):
    """A writer that ignores the lock (another tool) changes the input mid-render: nothing is published."""
    import etl.commands.render as render_mod

    real = render_mod._run_partitions

    def rewrite_input(*args, **kw):
        real(*args, **kw)
        zarr.open_group(str(kp), mode="r+").attrs["content_hash"] = "0" * 64

    monkeypatch.setattr(render_mod, "_run_partitions", rewrite_input)
    with pytest.raises(ActrecError, match="changed while rendering"):
        render(kp, tmp_path / "out.zarr", small_render)
    assert not (tmp_path / "out.zarr").exists()


# ------------------------------------------------------------------ the clip table is tied to the arrays


@pytest.mark.parametrize("edit", ["delete_first", "duplicate", "swap", "n_frames", "label"])
@pytest.mark.parametrize("kind", ["keypoints", "heatmaps"])
def test_an_edited_clip_table_is_refused_and_verify_names_it(kind, edit, kp, hm):
    store = kp if kind == "keypoints" else hm
    table = pd.read_parquet(store / CLIPS_FILE)
    if edit == "delete_first":
        table = table.iloc[1:]
    elif edit == "duplicate":
        table = pd.concat([table.iloc[:1], table.iloc[:-1]])
    elif edit == "swap":
        table = table.iloc[[1, 0, *range(2, len(table))]]
    elif edit == "n_frames":
        table.loc[table.index[3], "n_frames"] += 1
    else:
        table.loc[table.index[3], "label"] = (table.label.iat[3] + 1) % table.label.max()
    table.reset_index(drop=True).to_parquet(store / CLIPS_FILE, index=False)
    opener = KeypointStore.open if kind == "keypoints" else HeatmapStore.open
    with pytest.raises(ActrecError, match=CLIPS_FILE):
        opener(store)
    report = verify_store(store)
    assert not report.ok
    assert report.bad[0][0] == CLIPS_FILE
    assert _verify_cli(store).exit_code == 1


# ------------------------------------------------------------------ missing or unfinished data never reads as zeros


def test_a_missing_shard_is_an_error_not_padding(hm):
    store = HeatmapStore.open(hm)
    clip = 5
    shard = int(store.clip_start[clip]) // store.heatmaps.shards[0]
    (hm / "heatmaps" / "c" / str(shard) / "0" / "0" / "0").unlink()
    with pytest.raises(ActrecError, match=f"heatmaps/c/{shard}/0/0/0 is missing"):
        store.read_clip(clip)  # opened before the deletion: the read path refuses too
    with pytest.raises(ActrecError, match="missing"):
        HeatmapStore.open(hm)
    report = verify_store(hm)
    assert [w for w, _ in report.bad] == ["heatmaps"]
    assert f"c/{shard}/0/0/0" in report.bad[0][1]


def test_a_partial_render_renamed_into_place_is_refused(kp, small_render, tmp_path, monkeypatch):
    import etl.commands.render as render_mod

    out = tmp_path / "hm.zarr"

    def killed(*_):
        raise KeyboardInterrupt  # stands in for a kill before the store is finalised

    monkeypatch.setattr(render_mod, "_finalise", killed)
    with pytest.raises(KeyboardInterrupt):
        render(kp, out, small_render)
    os.rename(tmp_path / "hm.zarr.partial", out)
    with pytest.raises(ActrecError, match="unfinished"):
        HeatmapStore.open(out)
    report = verify_store(out)  # no KeyError: 'checksums'
    assert not report.ok
    assert report.bad[0][0] == "zarr.json"
    assert "complete=False" in report.bad[0][1]


# ------------------------------------------------------------------ keypoint checksums; verify on both kinds


def _flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_keypoint_store_verifies_and_a_flipped_coord_is_caught(kp, small_render, tmp_path):
    assert verify_store(kp).ok
    assert verify_store(kp).kind == KIND
    # store coords uncompressed-equivalent damage: rewrite one clip's rows with a changed value, bypassing ingest
    store = KeypointStore.open(kp)
    coords = zarr.open_group(str(kp), mode="r+")["coords"]
    r = int(store.row_offsets[4])
    row = coords[r]
    row[0, 0] = np.float32(row[0, 0]) + np.float32(0.5)
    coords[r] = row
    with pytest.raises(ActrecError, match="fails its checksum"):
        render(kp, tmp_path / "hm.zarr", small_render)
    assert not (tmp_path / "hm.zarr").exists()
    report = verify_store(kp)
    assert [w for w, _ in report.bad] == [store.table.clip_id.iat[4]]
    result = _verify_cli(kp)
    assert result.exit_code == 1
    assert store.table.clip_id.iat[4] in result.output


def test_a_flipped_byte_in_a_keypoint_chunk_file_is_caught(kp):
    chunk = kp / "coords" / "c" / "0" / "0" / "0"
    _flip_byte(chunk, chunk.stat().st_size // 2)
    report = verify_store(kp)
    assert not report.ok
    assert _verify_cli(kp).exit_code == 1


def _damage(store: Path, what: str) -> str:
    """Apply one kind of damage; return the file or clip verify must name."""
    if what == "crop_boxes deleted":
        shutil.rmtree(store / "crop_boxes")
        return "crop_boxes/"
    if what == "flip_permutation edited":
        group = zarr.open_group(str(store), mode="r+")
        perm = list(group.attrs["flip_permutation"])
        perm[1], perm[2] = perm[2], perm[1]
        group.attrs["flip_permutation"] = perm
        return "zarr.json"
    if what == "complete false":
        zarr.open_group(str(store), mode="r+").attrs["complete"] = False
        return "zarr.json"
    if what == "checksums damaged":
        group = zarr.open_group(str(store), mode="r+")
        sums = group["checksums"][:]
        sums[2] ^= 1
        group["checksums"][:] = sums
        return "checksums/c/0"
    if what in ("clips.parquet corrupt", "rejects.parquet corrupt"):
        name = what.split()[0]
        _flip_byte(store / name, (store / name).stat().st_size // 2)
        return name
    if what == "zarr.json corrupt":
        (store / "zarr.json").write_text("{not json")
        return "zarr.json"
    if what == "heatmaps zarr.json edited":
        meta = json.loads((store / "heatmaps" / "zarr.json").read_text())
        meta["fill_value"] = 7
        (store / "heatmaps" / "zarr.json").write_text(json.dumps(meta))
        return "heatmaps/zarr.json"
    if what == "row_offsets edited":
        group = zarr.open_group(str(store), mode="r+")
        off = group["row_offsets"][:]
        off[3] += 1
        group["row_offsets"][:] = off
        return "row_offsets/c/0"
    if what == "extra file":
        (store / "stray.bin").write_bytes(b"x")
        return "stray.bin"
    raise AssertionError(what)


HEATMAP_DAMAGE = [
    "crop_boxes deleted",
    "flip_permutation edited",
    "complete false",
    "checksums damaged",
    "clips.parquet corrupt",
    "rejects.parquet corrupt",
    "zarr.json corrupt",
    "heatmaps zarr.json edited",
    "extra file",
]
KEYPOINT_DAMAGE = [
    "complete false",
    "checksums damaged",
    "clips.parquet corrupt",
    "rejects.parquet corrupt",
    "zarr.json corrupt",
    "row_offsets edited",
    "extra file",
]


@pytest.mark.parametrize("what", HEATMAP_DAMAGE)
def test_verify_names_every_kind_of_heatmap_store_damage(hm, what):
    where = _damage(hm, what)
    report = verify_store(hm)
    assert not report.ok, report.bad
    assert report.bad[0][0].startswith(where), report.bad
    with pytest.raises(ActrecError):
        HeatmapStore.open(hm)  # the trainer refuses what verify refuses
    result = _verify_cli(hm)
    assert result.exit_code == 1
    assert where in result.output


@pytest.mark.parametrize("what", KEYPOINT_DAMAGE)
def test_verify_names_every_kind_of_keypoint_store_damage(kp, what):
    where = _damage(kp, what)
    report = verify_store(kp)
    assert not report.ok, report.bad
    assert report.bad[0][0] == where, report.bad
    with pytest.raises(ActrecError):
        KeypointStore.open(kp)
    result = _verify_cli(kp)
    assert result.exit_code == 1
    assert where in result.output


def test_an_old_format_store_asks_for_a_rerender(hm):
    zarr.open_group(str(hm), mode="r+").attrs["format_version"] = 1
    with pytest.raises(ActrecError, match="Re-run `actrec-etl render`"):
        HeatmapStore.open(hm)


# ------------------------------------------------------------------ done markers are checked, not trusted


def _interrupted_render(kp: Path, out: Path, params, monkeypatch) -> Path:
    import etl.commands.render as render_mod

    def killed(*_):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(render_mod, "_finalise", killed)
        with pytest.raises(KeyboardInterrupt):
            render(kp, out, params)
    return out.with_name(out.name + ".partial")


def test_damaged_done_markers_are_redone(kp, small_render, tmp_path, monkeypatch):
    out = tmp_path / "hm.zarr"
    partial = _interrupted_render(kp, out, small_render, monkeypatch)
    markers = sorted((partial / PROGRESS_DIR).glob("*.json"), key=lambda p: int(p.stem))
    assert len(markers) >= 4
    edited = json.loads(markers[0].read_text())
    edited["checksums"][0] ^= 1
    markers[0].write_text(json.dumps(edited))  # edited
    markers[1].write_text(markers[1].read_text()[:20])  # truncated
    shard = next(iter(json.loads(markers[2].read_text())["shards"]))
    (partial / shard).unlink()  # shard deleted under its marker
    _flip_byte(partial / next(iter(json.loads(markers[3].read_text())["shards"])), 10)  # shard changed
    report = render(kp, out, small_render)
    assert report.redone_partitions == 4
    assert report.resumed_partitions == report.n_partitions - 4
    assert verify_store(out).ok
    render(kp, tmp_path / "ref.zarr", small_render)
    a, b = _files(out), _files(tmp_path / "ref.zarr")
    assert a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)  # the same bytes as an uninterrupted run


# ------------------------------------------------------------------ partitions bounded whatever the clip lengths


@pytest.mark.parametrize("length", [16, 20])
def test_partitions_are_bounded_in_frames_for_uniform_clips(length):
    fb, cps = 16, 16
    counts = []
    for n in (400, 4000):
        _, parts, total = plan_layout(np.full(n, length), fb, cps)
        counts.append(len(parts))
        sizes = [p.frame_hi - p.frame_lo for p in parts]
        assert max(sizes) <= fb * cps  # one shard each: memory per partition is flat
        assert sum(sizes) == total
        assert parts[-1].clip_hi == n
    assert counts[1] >= 9 * counts[0]  # the number of partitions grows with the dataset


def _uniform_keypoint_store(path: Path, n: int, t: int) -> Path:
    rng = np.random.default_rng(0)
    clips = []
    for i in range(n):
        kps = (rng.random((1, t, 17, 2)) * 200 + 50).astype(np.float32)
        clips.append(
            PoseClip(f"c{i:05d}", kps, np.ones((1, t, 17), np.float32), "a", "train", 480, 640, "x", "y")
        )
    return write_keypoint_store(path, clips)


def test_render_peak_memory_is_flat_in_the_dataset_size(tmp_path):
    from etl.heatmaps.spec import RenderSpec

    params = RenderSpec(size=32, frames_per_chunk=16, chunks_per_shard=4)
    peaks = []
    for n in (32, 128):
        kp = _uniform_keypoint_store(tmp_path / f"kp{n}", n, 20)
        tracemalloc.start()
        report = render(kp, tmp_path / f"hm{n}.zarr", params, threads=1)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert report.n_partitions >= n * 32 // (16 * 4)  # 32 frames per 20-frame clip, 64 per shard
        assert verify_store(tmp_path / f"hm{n}.zarr").ok
    assert peaks[1] < 1.5 * peaks[0], peaks  # 4x the clips: was 4x the memory (one partition)


# ------------------------------------------------------------------ one CPU: render, fit and evaluate exit


@pytest.mark.slow
def test_render_fit_evaluate_exit_when_pinned_to_one_cpu(keypoint_store, tmp_path):
    if shutil.which("taskset") is None:
        pytest.fail("taskset (util-linux) is needed for this test")
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    py = [sys.executable, "-c"]

    def run(code: str, *args: str) -> None:
        cmd = ["taskset", "-c", "0", *py, code, *args]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]

    hm = tmp_path / "hm.zarr"
    etl_cli, train_cli = "from etl.cli import app; app()", "from train.cli import app; app()"
    run(etl_cli, "render", str(keypoint_store), "--out", str(hm), "--size", "32", "--frames-per-chunk", "8")
    run(train_cli, "fit", str(hm), "--out", str(tmp_path / "run"), "--model", "c3d", "--preset", "tiny",
        "--epochs", "1", "--clip-len", "8", "--batch-size", "8", "--workers", "1", "--device", "cpu")  # fmt: skip
    run(train_cli, "evaluate", str(tmp_path / "run" / "last.pt"), str(hm), "--clips", "2", "--workers", "1",
        "--device", "cpu")  # fmt: skip


# ------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_stops_within_a_partition_and_says_how_to_resume(kp, small_render, tmp_path):
    calls = []

    def progress(done, total):
        calls.append(done)
        if done >= 1:
            raise KeyboardInterrupt  # what SIGINT does in the main thread while partitions run

    out = tmp_path / "hm.zarr"
    with pytest.raises(Interrupted, match="re-run the same command to resume") as err:
        render(kp, out, small_render, threads=1, on_progress=progress)
    total = len(plan_layout(KeypointStore.open(kp).table.n_frames.to_numpy(), 8, 4)[1])
    done = len(list((tmp_path / "hm.zarr.partial" / PROGRESS_DIR).glob("*.json")))
    assert 1 <= done <= 2 < total
    assert f"{done} of {total}" in str(err.value)
    report = render(kp, out, small_render)
    assert report.resumed_partitions == done
    assert verify_store(out).ok


SIGINT_DEFAULT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "


@pytest.mark.slow
def test_sigint_to_a_cli_render_exits_130_and_resumes(kp, tmp_path):
    # SIGINT once the first partition's marker exists. A render can finish (in ~1 s at 64 px) before a busy
    # test process sees a marker: then the same render at a larger size (4x, 16x the work) is interrupted instead.
    for size in ("64", "128", "256"):
        out = tmp_path / f"hm{size}.zarr"
        args = ["render", str(kp), "--out", str(out), "--size", size, "--frames-per-chunk", "8",
                "--chunks-per-shard", "1", "--threads", "1"]  # fmt: skip
        proc = subprocess.Popen(
            # Ctrl-C's default handler, as in a terminal: a runner started in the background (`cmd &` in a
            # script) passes SIGINT down as ignored, and the render would never see the signal
            [sys.executable, "-c", SIGINT_DEFAULT + "from etl.cli import app; app()", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        progress = tmp_path / f"hm{size}.zarr.partial" / PROGRESS_DIR
        deadline = time.time() + 120
        while time.time() < deadline and not list(progress.glob("*.json")) and proc.poll() is None:
            time.sleep(0.005)
        if proc.poll() is None:
            break
        assert proc.returncode == 0, proc.communicate()[1]  # finished before the signal: try a slower render
    else:
        pytest.fail("every render finished before it could be interrupted")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "re-run the same command to resume" in err
    assert "Traceback" not in err
    total = len(plan_layout(KeypointStore.open(kp).table.n_frames.to_numpy(), 8, 1)[1])
    assert len(list(progress.glob("*.json"))) < total / 2
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert "resumed from an earlier run" in result.output
    assert verify_store(out).ok


# ------------------------------------------------------------------ a full disk: one line, nothing left behind


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_during_ingest_overwrite_keeps_the_old_store(demo_dir, kp, monkeypatch):
    import etl.stores.keypoint_store as store_mod

    before = _files(kp)
    # the store module writes its tables (finalise_store, called by ingest)
    monkeypatch.setattr(store_mod, "write_table", _enospc)
    with pytest.raises(ActrecError, match="no space left") as err:
        _ingest(demo_dir / "clips", kp, demo_dir / "clips.csv", mode="overwrite")
    assert str(kp) + ".partial" in str(err.value)
    assert "\n" not in str(err.value)
    assert _files(kp) == before
    assert not list(kp.parent.glob("*.partial"))
    assert not list(kp.parent.glob("*.tmp"))


def test_full_disk_during_render_keeps_the_resumable_state(kp, small_render, tmp_path, monkeypatch):
    import etl.commands.render as render_mod

    real, calls = render_mod._write_marker, []

    def fill_up(path, payload):
        calls.append(path)
        if len(calls) == 3:
            path.with_suffix(".tmp").write_text("half")  # a half-written marker, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, payload)

    monkeypatch.setattr(render_mod, "_write_marker", fill_up)
    out = tmp_path / "hm.zarr"
    with pytest.raises(ActrecError, match=r"no space left.*re-run the same command to resume") as err:
        render(kp, out, small_render, threads=1)
    assert "\n" not in str(err.value)
    assert str(tmp_path / "hm.zarr.partial") in str(err.value)
    partial = tmp_path / "hm.zarr.partial"
    kept = len(list((partial / PROGRESS_DIR).glob("*.json")))  # 2, or 3 if the next one had started
    assert not out.exists()
    assert kept in (2, 3)
    monkeypatch.setattr(render_mod, "_write_marker", real)
    assert render(kp, out, small_render).resumed_partitions == kept  # and the half-written marker is gone
    assert verify_store(out).ok
    assert not list(tmp_path.rglob("*.tmp"))


def test_full_disk_during_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    import torch

    from train.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})

    def half_written(state, f, *a, **k):
        f.write(b"PK\x03\x04partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(ActrecError, match=r"no space left.*last\.pt") as err:
        save_checkpoint(path, {"epoch": 2})
    assert "\n" not in str(err.value)
    assert not (tmp_path / "last.pt.tmp").exists()
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 1 MiB file system (tmpfs), when this process may mount one (root in a container or CI)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]).returncode
    ):
        pytest.skip("needs root to mount a small tmpfs; the monkeypatched ENOSPC tests cover the same paths")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_a_real_full_disk_gives_one_line_for_render_and_checkpoint(kp, tiny_fs):
    import torch

    from train.checkpoint import save_checkpoint

    result = runner.invoke(app, ["render", str(kp), "--out", str(tiny_fs / "hm.zarr"), "--size", "64",
                                 "--codec", "none", "--threads", "1"])  # fmt: skip
    assert result.exit_code == 1
    assert "no space left" in result.output
    assert "Traceback" not in result.output
    assert not list(tiny_fs.rglob("*.tmp"))
    shutil.rmtree(tiny_fs / "hm.zarr.partial")
    with pytest.raises(ActrecError, match="no space left"):
        save_checkpoint(tiny_fs / "last.pt", {"w": torch.zeros(1 << 20)})
    assert not list(tiny_fs.iterdir())


# ------------------------------------------------------------------ the fit side


def _tiny(store: Path, out: Path, **kw):
    return tiny(store, out, **{"epochs": 1, **kw})


def test_render_overwrite_is_refused_while_a_fit_reads_the_store(kp, hm, small_render):
    with reading_store(hm, "fit"), pytest.raises(ActrecError, match="in use right now"):
        render(kp, hm, small_render, overwrite=True)


def test_a_store_replaced_under_a_running_fit_stops_it_with_one_line(hm, heatmap_store, tmp_path):
    from train.fit import fit

    other = tmp_path / "other.zarr"
    shutil.copytree(heatmap_store, other)
    replaced = []

    def progress(_kind, _total):
        def advance(n, **_):
            if not replaced:  # after the first batch: another tool swaps the folder (mv, dvc checkout)
                os.rename(hm, tmp_path / "old.zarr")
                os.rename(other, hm)
                replaced.append(True)

        return advance

    with pytest.raises(ActrecError, match="was replaced while the fit was reading it"):
        fit(_tiny(hm, tmp_path / "run"), log=lambda *_: None, progress=progress)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_two_fits_into_one_out_cannot_run_at_once(hm, tmp_path):
    from train.fit import fit

    with exclusive_lock(tmp_path / "run", "fit"), pytest.raises(ActrecError, match="another fit is writing"):
        fit(_tiny(hm, tmp_path / "run"), log=lambda *_: None)


@pytest.mark.slow
def test_resume_notices_relabelled_clips(demo_dir, small_render, tmp_path):
    from train.fit import fit

    manifest = pd.read_csv(demo_dir / "clips.csv")
    kp, hm = tmp_path / "kp.zarr", tmp_path / "hm.zarr"
    _ingest(demo_dir / "clips", kp, demo_dir / "clips.csv")
    render(kp, hm, small_render)
    fit(_tiny(hm, tmp_path / "run"), log=lambda *_: None)
    relabelled = manifest.assign(
        label_name=np.roll(manifest.label_name.to_numpy(), 1),
        split=np.where(manifest.split == "train", "test", "train"),
    )
    relabelled.to_csv(tmp_path / "relabelled.csv", index=False)
    _ingest(demo_dir / "clips", kp, tmp_path / "relabelled.csv", mode="overwrite")
    render(kp, hm, small_render, overwrite=True)
    with pytest.raises(ActrecError, match=r"clip table \(labels, splits\)"):
        fit(replace(_tiny(hm, tmp_path / "run"), resume=True), log=lambda *_: None)
    lines = []
    fit(replace(_tiny(hm, tmp_path / "run"), resume=True, overwrite=True), log=lines.append)
    assert any("clip table (labels, splits)" in line and "from scratch" in line for line in lines), lines


@pytest.mark.slow
def test_dask_workers_pinned_to_one_cpu_exit_cleanly(keypoint_store, tmp_path):
    """Without starting numba's pool on each worker's main thread, the worker hangs at exit and the nanny has
    to kill it ("Worker process still alive after 4.0 seconds, killing")."""
    code = (
        "from distributed import LocalCluster\n"
        "from etl.heatmaps.spec import RenderSpec\n"
        "from etl.commands.render import render\n"
        "if __name__ == '__main__':\n"
        "    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as c:\n"
        f"        render({str(keypoint_store)!r}, {str(tmp_path / 'hm.zarr')!r}, RenderSpec(size=32),"
        " scheduler=c.scheduler_address)\n"
    )
    script = tmp_path / "dask_render.py"
    script.write_text(code)
    proc = subprocess.run(
        ["taskset", "-c", "0", sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "still alive" not in proc.stderr
    assert verify_store(tmp_path / "hm.zarr").ok
