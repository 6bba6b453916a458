"""The trainer end to end on tiny configs: sampling, augmentation, fit, determinism, SIGKILL + resume,
evaluate, predict and DDP (gloo, 2 processes)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_train import tiny
from typer.testing import CliRunner

from etl.common.errors import ActrecError
from etl.stores.heatmap_store import HeatmapStore
from train.checkpoint import load_checkpoint
from train.cli import app
from train.fit import fit
from train.sources.heatmap_augment import random_resized_crop_flip
from train.sources.heatmaps import HeatmapClips
from train.sources.loading import EpochSampler
from train.sources.sampling import sample_test, sample_train
from train.sources.views import hflip, to_model_input

runner = CliRunner()


def _quiet(*_):
    pass


# ------------------------------------------------------------------------------------------- sampling


@pytest.mark.shared
def test_test_sampling_matches_posec3d(anchor_dump):
    for k in range(4):
        n = anchor_dump[f"s{k}_raw_keypoint"].shape[1]
        np.testing.assert_array_equal(sample_test(n, 48, 1)[0], anchor_dump[f"s{k}_val_frame_inds"])


def test_train_sampling_covers_the_clip_in_order():
    rng = np.random.RandomState(0)
    for n in (5, 40, 63, 200):
        idx = sample_train(n, 32, rng)
        assert idx.shape == (32,)
        assert idx.min() >= 0
        assert idx.max() < n
        if n >= 32:
            assert (np.diff(idx) > 0).all()  # one frame per segment, in time order
            assert idx[0] < n / 32 + 1
            assert idx[-1] >= n - n / 32 - 1
    views = sample_test(100, 16, 10)
    assert views.shape == (10, 16)
    np.testing.assert_array_equal(views, sample_test(100, 16, 10))  # fixed


def test_dataset_returns_uint8_views_of_the_store(heatmap_store):
    store = HeatmapStore.open(heatmap_store)
    ds = HeatmapClips(
        heatmap_store,
        np.arange(len(store)),
        store.table.label.to_numpy(),
        clip_len=8,
        train=False,
        num_clips=3,
    )
    views, label = ds[(2, 0)]
    assert views.dtype == torch.uint8
    assert views.shape == (3, 8, 34, 32, 32)
    frames = sample_test(int(store.n_frames[2]), 8, 3)
    np.testing.assert_array_equal(views.numpy(), store.read_clip(2)[frames])
    assert label == store.table.label.iat[2]
    train = HeatmapClips(
        heatmap_store, np.arange(len(store)), store.table.label.to_numpy(), clip_len=8, train=True
    )
    a, b, c = train[(2, 0)][0], train[(2, 0)][0], train[(2, 1)][0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)  # a function of (seed, epoch, clip)


def test_epoch_sampler_shards_ranks_and_reshuffles():
    parts = [list(EpochSampler(10, shuffle=True, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert all(len(p) == 4 for p in parts)
    assert set().union(*[{i for i, _ in p} for p in parts]) == set(range(10))
    s = EpochSampler(10, shuffle=True, seed=3)
    first = list(s)
    s.set_epoch(1)
    assert first != list(s)
    assert all(e == 1 for _, e in s)


# ------------------------------------------------------------------------------------------- augment


def test_full_crop_with_flip_equals_a_mirror_with_channel_swap():
    x = torch.rand(2, 4, 3, 8, 8)
    perm = [1, 0, 3, 2]
    g = torch.Generator().manual_seed(0)
    out = random_resized_crop_flip(
        x, size=8, flip_permutation=perm, generator=g, area=(1, 1), ratio=(1, 1), flip_prob=1.0
    )
    torch.testing.assert_close(out, hflip(x, perm))
    torch.testing.assert_close(hflip(hflip(x, perm), perm), x)
    kept = random_resized_crop_flip(
        x, size=8, flip_permutation=perm, generator=g, area=(1, 1), ratio=(1, 1), flip_prob=0.0
    )
    torch.testing.assert_close(kept, x)
    crop = random_resized_crop_flip(x, size=5, flip_permutation=perm, generator=g)
    assert crop.shape == (2, 4, 3, 5, 5)


@pytest.mark.parametrize(("dtype", "scale"), [(torch.uint8, 255.0), (torch.float16, 1.0)])
def test_model_input_is_the_scaled_views_channels_first(dtype, scale):
    views = (torch.rand(2, 5, 3, 4, 4) * 255).to(dtype)  # (B, T, C, S, S)
    x = to_model_input(views, scale)
    assert x.shape == (2, 3, 5, 4, 4)
    assert x.dtype == torch.float32
    assert x.is_contiguous()
    assert torch.equal(x, (views.float() / scale).permute(0, 2, 1, 3, 4))
    assert views.dtype == dtype  # the input is left alone


# ------------------------------------------------------------------------------------------- fit


@pytest.mark.slow
def test_fit_writes_checkpoints_metrics_and_plots(heatmap_store, tmp_path):
    result = fit(tiny(heatmap_store, tmp_path / "run", model="cnn_lstm_attn", workers=2), log=_quiet)
    run = tmp_path / "run"
    for name in (
        "last.pt",
        "best.pt",
        "metrics.csv",
        "metrics.json",
        "plots/curves.png",
        "plots/confusion.png",
        "plots/attention.png",
    ):
        assert (run / name).exists(), name
    history = pd.read_csv(run / "metrics.csv")
    assert list(history.epoch) == [1, 2]
    assert set(json.loads((run / "metrics.json").read_text())) >= {"val_top1", "val_mean_class_acc"}
    assert 0 <= result["val_top1"] <= 1
    ckpt = load_checkpoint(run / "last.pt")  # weights_only=True
    assert ckpt["epoch"] == 1
    assert ckpt["model_name"] == "cnn_lstm_attn"
    assert ckpt["model_config"]["in_channels"] == 34
    assert ckpt["model_config"]["num_classes"] == 8
    assert {"optimizer", "scheduler", "best_metric", "rng", "fit_config", "classes", "render"} <= set(ckpt)


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


@pytest.mark.slow
def test_cpu_training_is_deterministic(heatmap_store, tmp_path):
    fit(tiny(heatmap_store, tmp_path / "a", model="cnn_lstm"), log=_quiet)
    fit(tiny(heatmap_store, tmp_path / "b", model="cnn_lstm"), log=_quiet)
    a, b = _weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    fit(tiny(heatmap_store, tmp_path / "c", model="cnn_lstm", seed=2), log=_quiet)
    c = _weights(tmp_path / "c" / "last.pt")
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.slow
def test_a_rerun_writes_the_same_bytes_and_timing_lives_apart(heatmap_store, tmp_path):
    """What DVC hashes (checkpoints, metrics.csv, metrics.json) is byte-identical between two runs of the same
    settings, so a fresh `make demo` leaves dvc.lock (and git status) clean; wall-clock figures go to timing.*."""
    import hashlib

    def digest(path: Path) -> str:
        return hashlib.md5(path.read_bytes()).hexdigest()

    names = ("last.pt", "best.pt", "metrics.csv", "metrics.json")
    cfg = replace(
        tiny(heatmap_store, tmp_path / "a"), overwrite=True
    )  # as the DVC stage: the same command twice
    fit(cfg, log=_quiet)
    first = {name: digest(tmp_path / "a" / name) for name in names}
    first_timing = (tmp_path / "a" / "timing.csv").read_text()
    time.sleep(0.05)  # other wall-clock times
    result = fit(cfg, log=_quiet)
    assert {name: digest(tmp_path / "a" / name) for name in names} == first
    assert (tmp_path / "a" / "timing.csv").read_text() != first_timing  # the clock did change
    assert "train_clips_per_s" not in pd.read_csv(tmp_path / "a" / "metrics.csv")
    assert "train_time_s" not in json.loads((tmp_path / "a" / "metrics.json").read_text())
    timing = pd.read_csv(tmp_path / "a" / "timing.csv")
    assert list(timing.epoch) == [1, 2]
    assert (timing.train_clips_per_s > 0).all()
    summary = json.loads((tmp_path / "a" / "timing.json").read_text())
    assert summary["train_time_s"] == pytest.approx(timing.epoch_s.sum())
    assert result["train_time_s"] == summary["train_time_s"]  # fit still returns them
    # a resumed run keeps one timing row per epoch
    fit(replace(tiny(heatmap_store, tmp_path / "a", epochs=3), resume=True), log=_quiet)
    assert list(pd.read_csv(tmp_path / "a" / "timing.csv").epoch) == [1, 2, 3]


TIMING_DAMAGE = {
    "empty": (b"", "No columns to parse"),
    "binary": (bytes(range(256)) * 4, "damaged"),
    "missing_column": (b"epoch,epoch_s\n1,2.0\n", "missing columns ['train_clips_per_s'"),
    "text_in_numbers": (
        b"epoch,epoch_s,train_clips_per_s,data_wait_share,peak_gpu_mem_gb\n1,fast,3.0,0.1,0.0\n",
        "non-numeric values in ['epoch_s']",
    ),
    "cut_mid_row": (
        b"epoch,epoch_s,train_clips_per_s,data_wait_share,peak_gpu_mem_gb\n1,2.0,3.0,\x00\xff",
        "damaged",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(TIMING_DAMAGE))
def test_a_damaged_timing_csv_stops_a_resume_with_one_line(heatmap_store, tmp_path, damage):
    """timing.csv is the one run file fit reads back on --resume: a damaged one is a one-line error that names
    it and says how to go on, before an epoch is trained (default workers, through the CLI as a user runs it)."""
    from typer.testing import CliRunner

    from train.cli import app

    out = tmp_path / "run"
    fit(tiny(heatmap_store, out, epochs=1), log=_quiet)
    data, phrase = TIMING_DAMAGE[damage]
    (out / "timing.csv").write_bytes(data)
    before = (out / "last.pt").read_bytes()
    args = [
        "fit",
        str(heatmap_store),
        "--out",
        str(out),
        "--model",
        "c3d",
        "--preset",
        "tiny",
        "--epochs",
        "2",
    ]
    args += ["--clip-len", "8", "--batch-size", "4", "--lr", "1e-3", "--seed", "1", "--resume"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    message = " ".join(result.output.split())
    assert f"{out / 'timing.csv'} is damaged" in message
    assert phrase in message
    assert "delete it to continue" in message
    assert (out / "last.pt").read_bytes() == before  # nothing trained, nothing replaced
    (out / "timing.csv").unlink()  # what the message says to do
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out / "timing.csv").epoch) == [2]  # epoch 1's clock is gone, the run goes on


def test_fit_is_the_loop_and_short():
    """train/fit.py holds the loop only (the run folder's rules are train/run_dir.py's, the data the sources'):
    under 350 lines, and train_one_epoch takes the step and the epoch, not a dozen positional arguments."""
    import inspect

    import train.fit

    assert len(Path(train.fit.__file__).read_text().splitlines()) < 350
    assert len(inspect.signature(train.fit.train_one_epoch).parameters) <= 3
    longest = max(
        len(inspect.getsource(f).splitlines())
        for f in vars(train.fit).values()
        if inspect.isfunction(f) and f.__module__ == "train.fit"
    )
    assert longest < 150  # _fit was 208 lines


def test_the_code_digest_covers_every_source_file_of_etl_and_train(tmp_path):
    import shutil

    from train.run_dir import PACKAGES, code_digest

    copies = tuple(
        Path(shutil.copytree(p, tmp_path / p.name, ignore=shutil.ignore_patterns("__pycache__")))
        for p in PACKAGES
    )
    assert (
        code_digest(copies) == code_digest()
    )  # names relative to the package: where it lives does not matter
    for changed in (copies[0] / "readers" / "__init__.py", copies[1] / "plots.py"):
        before = code_digest(copies)
        changed.write_text(changed.read_text() + "# a comment\n")
        assert code_digest(copies) != before


@pytest.mark.slow
def test_a_finished_run_trained_with_other_code_is_retrained_by_resume_overwrite(heatmap_store, tmp_path):
    """What `dvc repro` runs after a code change (--resume --overwrite) retrains a finished run instead of keeping
    its old results; --resume alone keeps it and says so; an unfinished run continues with a note."""
    out = tmp_path / "run"
    fit(tiny(heatmap_store, out), log=_quiet)
    timing = pd.read_csv(out / "timing.csv")
    from train.run_dir import code_digest

    assert (timing.code_sha256 == code_digest()).all()
    timing.assign(code_sha256="0" * 64).to_csv(out / "timing.csv", index=False)  # as if the code had changed
    before, weights = (out / "last.pt").read_bytes(), _weights(out / "last.pt")
    lines: list[str] = []
    fit(replace(tiny(heatmap_store, out), resume=True), log=lines.append)
    assert (out / "last.pt").read_bytes() == before
    assert any(
        "trained with other actrec code" in line and "--overwrite retrains it" in line for line in lines
    )
    assert any("nothing to train" in line for line in lines)
    lines.clear()
    fit(replace(tiny(heatmap_store, out), resume=True, overwrite=True), log=lines.append)
    assert any("it is finished and was trained with other actrec code" in line for line in lines)
    assert any("training from scratch" in line for line in lines)
    assert (pd.read_csv(out / "timing.csv").code_sha256 == code_digest()).all()
    retrained = _weights(out / "last.pt")  # the same code and settings: the same weights again
    assert all(torch.equal(weights[k], retrained[k]) for k in weights)
    # unfinished: continued with this code, with a note
    timing = pd.read_csv(out / "timing.csv")
    timing.assign(code_sha256="0" * 64).to_csv(out / "timing.csv", index=False)
    lines.clear()
    fit(replace(tiny(heatmap_store, out, epochs=3), resume=True, overwrite=True), log=lines.append)
    assert any("continuing it with this code" in line for line in lines)
    assert any("resuming" in line and "epoch 3/3" in line for line in lines)
    assert list(pd.read_csv(out / "timing.csv").code_sha256) == ["0" * 64] * 2 + [code_digest()]


@pytest.mark.slow
def test_bf16_on_a_cpu_is_opt_in_recorded_and_trains_channels_last(heatmap_store, tmp_path):
    """--precision auto trains a CPU run in fp32 (the bits of the determinism test); bf16 autocast is taken only
    when asked, says so, is recorded, and changes the numbers (so it really ran under autocast)."""
    lines: list[str] = []
    fit(tiny(heatmap_store, tmp_path / "fp32"), log=lines.append)
    assert not any("bf16" in line for line in lines)
    lines.clear()
    fit(replace(tiny(heatmap_store, tmp_path / "bf16"), precision="bf16"), log=lines.append)
    assert any(line.endswith(", bf16 autocast") for line in lines if " on cpu: " in line)
    ckpt = load_checkpoint(tmp_path / "bf16" / "last.pt")
    assert ckpt["fit_config"]["precision"] == "bf16"
    a, b = _weights(tmp_path / "fp32" / "last.pt"), ckpt["model"]
    assert not all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.isfinite(v.float()).all() for v in b.values())
    conv = next(v for k, v in b.items() if k.endswith("conv1.weight") and v.ndim == 5)  # (O, C, kT, kH, kW)
    assert conv.is_contiguous(memory_format=torch.channels_last_3d)  # trained (and saved) channels-last
    with pytest.raises(ActrecError, match="--precision must be one of auto, bf16, fp32"):
        fit(replace(tiny(heatmap_store, tmp_path / "x"), precision="fp16"), log=_quiet)


@pytest.fixture(scope="module")
def reference_3_epochs(heatmap_store, tmp_path_factory) -> Path:
    """An uninterrupted 3-epoch run: what an interrupted and resumed run must equal, weight for weight."""
    ref = tmp_path_factory.mktemp("ref3")
    fit(tiny(heatmap_store, ref, epochs=3), log=_quiet)
    return ref


def _stop_at_epoch_2(line: str) -> None:
    """A log hook: Ctrl-C (KeyboardInterrupt) when epoch 2 has trained, before its checkpoint is written."""
    if line.startswith("epoch 2/3:"):
        raise KeyboardInterrupt


def _resume_equals_reference(heatmap_store, run: Path, ref: Path) -> None:
    interrupted_at = load_checkpoint(run / "last.pt")["epoch"]
    assert interrupted_at < 2  # the run really stopped short of the end
    lines = []
    fit(replace(tiny(heatmap_store, run, epochs=3), resume=True), log=lines.append)
    assert any(
        line.startswith(f"resuming {run / 'last.pt'} at epoch {interrupted_at + 2}/3") for line in lines
    )
    a, b = _weights(ref / "last.pt"), _weights(run / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(pd.read_csv(run / "metrics.csv")) == 3


@pytest.mark.slow
def test_ctrl_c_then_resume_continues_exactly(heatmap_store, reference_3_epochs, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(tiny(heatmap_store, run, epochs=3), log=_stop_at_epoch_2)
    _resume_equals_reference(heatmap_store, run, reference_3_epochs)


_KILLED_CHILD = """
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
fit(tiny(store, out, epochs=3), log=log)
"""


@pytest.mark.slow
def test_sigkill_then_resume_continues_exactly(heatmap_store, reference_3_epochs, tmp_path):
    """A real SIGKILL (no clean-up at all), sent when the child says it is mid-run: no race with its speed."""
    run, marker = tmp_path / "run", tmp_path / "ready"
    # Float sums depend on the thread count: the child must use as many threads as this process.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    code = [_KILLED_CHILD, str(Path(__file__).parent), str(heatmap_store), str(run), str(marker)]
    proc = subprocess.Popen([sys.executable, "-c", *code], stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), f"the child stopped before epoch 2: {proc.communicate()[1].decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    _resume_equals_reference(heatmap_store, run, reference_3_epochs)


@pytest.mark.slow
def test_resume_with_other_settings_is_refused_unless_overwrite(heatmap_store, tmp_path):
    run = tmp_path / "run"
    fit(tiny(heatmap_store, run, epochs=1), log=_quiet)
    before = (run / "last.pt").read_bytes()
    with pytest.raises(ActrecError, match=r"different settings \(lr\).*--overwrite"):
        fit(replace(tiny(heatmap_store, run, epochs=1, lr=5e-4), resume=True), log=_quiet)
    assert (run / "last.pt").read_bytes() == before  # refused: nothing touched
    lines = []
    fit(replace(tiny(heatmap_store, run, epochs=1, lr=5e-4), resume=True, overwrite=True), log=lines.append)
    assert any("different settings (lr)" in line and "from scratch" in line for line in lines)
    assert load_checkpoint(run / "last.pt")["fit_config"]["lr"] == 5e-4


@pytest.mark.slow
def test_fit_never_replaces_a_run_unasked(heatmap_store, tmp_path):
    run = tmp_path / "run"
    fit(tiny(heatmap_store, run, model="cnn_lstm_attn", epochs=1), log=_quiet)
    assert (run / "plots" / "attention.png").is_file()
    before = (run / "last.pt").read_bytes()
    with pytest.raises(ActrecError, match=r"already holds a run .*--resume.*--overwrite"):
        fit(tiny(heatmap_store, run, epochs=1), log=_quiet)
    assert (run / "last.pt").read_bytes() == before
    result = runner.invoke(app, ["fit", str(heatmap_store), "--model", "c3d", "--out", str(run)])
    assert result.exit_code == 1
    assert "already holds a run" in result.output
    assert "Traceback" not in result.output
    # --overwrite: a c3d run replaces the attention run, and leaves none of its files behind
    fit(replace(tiny(heatmap_store, run, epochs=1), overwrite=True), log=_quiet)
    assert load_checkpoint(run / "last.pt")["model_name"] == "c3d"
    assert not (run / "plots" / "attention.png").exists()


@pytest.mark.slow
def test_resume_with_fewer_epochs_trains_from_scratch_with_overwrite(heatmap_store, tmp_path):
    """An experiment asking for fewer epochs than a finished run gets a run of its own length, never the
    longer run's numbers; more epochs continue; the same number has nothing to do."""
    run = tmp_path / "run"
    fit(tiny(heatmap_store, run, epochs=2), log=_quiet)
    with pytest.raises(ActrecError, match="it has 2 epochs, more than the 1 asked"):
        fit(replace(tiny(heatmap_store, run, epochs=1), resume=True), log=_quiet)
    lines = []
    fit(replace(tiny(heatmap_store, run, epochs=1), resume=True, overwrite=True), log=lines.append)
    assert any("from scratch" in line for line in lines)
    assert len(pd.read_csv(run / "metrics.csv")) == 1
    assert load_checkpoint(run / "last.pt")["epoch"] == 0
    ref = tmp_path / "ref"
    fit(tiny(heatmap_store, ref, epochs=1), log=_quiet)
    a, b = _weights(ref / "last.pt"), _weights(run / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same as a fresh 1-epoch run
    lines = []
    fit(replace(tiny(heatmap_store, run, epochs=1), resume=True, overwrite=True), log=lines.append)
    assert any("nothing to train" in line for line in lines)
    assert not any("epoch 2/1" in line for line in lines)
    fit(replace(tiny(heatmap_store, run, epochs=2), resume=True, overwrite=True), log=lines.append)
    assert any("resuming" in line and "epoch 2/2" in line for line in lines)
    assert len(pd.read_csv(run / "metrics.csv")) == 2


def test_unknown_model_leaves_no_run_folder(heatmap_store, tmp_path):
    result = runner.invoke(app, ["fit", str(heatmap_store), "--model", "c3dd", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "--model must be one of" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_resume_notices_a_re_rendered_store_at_the_same_path(
    heatmap_store, keypoint_store, small_render, tmp_path
):
    import shutil

    from etl.commands.render import render

    store = tmp_path / "hm.zarr"
    shutil.copytree(heatmap_store, store)
    fit(tiny(store, tmp_path / "run", epochs=1), log=_quiet)
    render(keypoint_store, store, replace(small_render, sigma=1.0), overwrite=True)
    lines = []
    fit(replace(tiny(store, tmp_path / "run", epochs=1), resume=True, overwrite=True), log=lines.append)
    assert any("the heatmap store's contents" in line for line in lines)
    assert (
        load_checkpoint(tmp_path / "run" / "last.pt")["data"]["render"]
        == HeatmapStore.open(store).attrs["fingerprint"]
    )


# ------------------------------------------------------------------------------------------- evaluate, predict


@pytest.fixture(scope="module")
def trained(heatmap_store, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("trained")
    fit(tiny(heatmap_store, run, model="cnn_lstm_attn", epochs=1), log=_quiet)
    return run / "best.pt"


def _assert_metrics_match_confusion(m: dict) -> None:
    """top1, mean class accuracy and per-class accuracy recomputed from the confusion matrix written beside them."""
    cm = np.asarray(m["confusion_matrix"])  # (K, K): row = true class, column = predicted
    assert m["top1"] == pytest.approx(np.trace(cm) / cm.sum())
    support = cm.sum(axis=1)
    per_class = np.diag(cm)[support > 0] / support[support > 0]
    assert sorted(m["per_class"].values()) == pytest.approx(sorted(per_class))
    assert m["mean_class_acc"] == pytest.approx(per_class.mean())
    assert m["top1"] <= m["top5"] <= 1.0
    assert m["n_clips"] == cm.sum()


def test_evaluate_writes_metrics_json(trained, heatmap_store, tmp_path):
    out = tmp_path / "eval.json"
    result = runner.invoke(
        app,
        ["evaluate", str(trained), str(heatmap_store), "--clips", "3", "--workers", "0", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    m = json.loads(out.read_text())
    _assert_metrics_match_confusion(m)
    n_test = int((HeatmapStore.open(heatmap_store).table.split == "test").sum())
    assert m["n_clips"] == n_test
    assert sum(map(sum, m["confusion_matrix"])) == n_test
    assert set(m["per_class"]) <= set(HeatmapStore.open(heatmap_store).classes)


def test_evaluate_refuses_a_store_rendered_differently(trained, keypoint_store, tmp_path):
    from etl.commands.render import render
    from etl.heatmaps.spec import RenderSpec

    other = tmp_path / "joints.zarr"
    render(keypoint_store, other, RenderSpec(channels="joints", size=32))
    result = runner.invoke(app, ["evaluate", str(trained), str(other), "--workers", "0"])
    assert result.exit_code == 1
    assert "does not match" in result.output


def test_predict_prints_top_k_labels(trained, demo_dir):
    clip = sorted((demo_dir / "clips").glob("*.json"))[0]
    result = runner.invoke(app, ["predict", str(trained), str(clip), "--top-k", "3"])
    assert result.exit_code == 0, result.output
    classes = load_checkpoint(trained)["classes"]
    shown = [name for name in classes if name in result.output]
    assert len(shown) >= 3
    assert clip.stem in result.output


def test_predict_folder_summary_json_csv_true_labels_and_attention(trained, demo_dir, tmp_path):
    import csv

    from etl.pose.skeleton import get_layout
    from train.deploy.predict import read_clips

    folder = tmp_path / "few"
    folder.mkdir()
    for clip in sorted((demo_dir / "clips").glob("*.json"))[:3]:
        shutil.copy(clip, folder / clip.name)
    manifest = demo_dir / "clips.csv"
    truth = {row["clip_id"]: row["label_name"] for row in csv.DictReader(manifest.open())}
    out = tmp_path / "p.json"
    base = ["predict", str(trained), str(folder), "--clips", "1", "--labels", str(manifest)]
    shown = runner.invoke(app, base)
    assert shown.exit_code == 0, shown.output
    assert "format auto: read" in shown.output
    assert "as coco-json" in shown.output  # what auto picked
    assert shown.output.count("predicted") == 1  # one table for the folder, not one per clip
    assert "accuracy " in shown.output
    assert "/3 = " in shown.output

    result = runner.invoke(app, [*base, "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc == json.loads(out.read_text())
    assert doc["format"] == "coco-json"
    assert doc["n_clips"] == 3
    n_frames = {c.clip_id: c.n_frames for c in read_clips(folder, "coco-json", get_layout("coco17"))}
    correct = 0
    for clip in doc["clips"]:
        assert clip["true_label"] == truth[clip["clip_id"]]
        assert clip["file"].endswith(clip["clip_id"] + ".json")
        correct += clip["label"] == clip["true_label"]
        weights = np.asarray(clip["attention"])  # cnn_lstm_attn: one weight per frame of the clip
        assert len(weights) == n_frames[clip["clip_id"]]
        assert abs(weights.sum() - 1) < 1e-5
        assert (weights >= 0).all()
    assert doc["accuracy"] == correct / 3

    as_csv = tmp_path / "p.csv"
    runner.invoke(app, [*base, "--out", str(as_csv)])
    rows = list(csv.DictReader(as_csv.open()))
    assert [r["clip_id"] for r in rows] == [c["clip_id"] for c in doc["clips"]]
    assert [r["true_label"] for r in rows] == [c["true_label"] for c in doc["clips"]]
    bad = runner.invoke(app, [*base, "--out", str(tmp_path / "p.txt")])
    assert bad.exit_code == 1
    assert "use a .csv or .json file" in bad.output


def test_predict_layout_hint_names_no_missing_option():
    from etl.pose.skeleton import get_layout
    from train.deploy.predict import _layout_hint

    reason = "joints do not match; --layout coco17 matches the file"
    hinted = _layout_hint(reason, get_layout("jhmdb15"))
    assert "--layout" not in hinted
    assert "layout coco17 matches" in hinted
    assert "trained on jhmdb15" in hinted


def test_fit_uses_its_thread_count_whatever_the_machine_gives(heatmap_store, tmp_path):
    # torch's default thread count is the machine's core count, and float sums are split by it (a 1- and a
    # 2-thread epoch differ in the last bits here): fit fixes it, so a 1-core default gives the 2-core numbers
    before = torch.get_num_threads()
    weights = []
    try:
        for default in (1, 2):
            torch.set_num_threads(default)
            run = tmp_path / f"default{default}"
            fit(tiny(heatmap_store, run, epochs=1, threads=2), log=_quiet)
            assert torch.get_num_threads() == 2
            weights.append(load_checkpoint(run / "last.pt")["model"])
    finally:
        torch.set_num_threads(before)
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


# ------------------------------------------------------------------------------------------- DDP


@pytest.mark.slow
def test_ddp_with_gloo_on_two_processes(heatmap_store, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        str(Path(__file__).parent / "ddp_recording.py"),
        str(tmp_path),
        "fit",
        str(heatmap_store),
        "--model",
        "c3d",
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--clip-len",
        "8",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--workers",
        "0",
        "--out",
        str(run),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 0
    history = pd.read_csv(run / "metrics.csv")
    n_train = int((HeatmapStore.open(heatmap_store).table.split == "train").sum())
    assert len(history) == 1
    assert "x2" in proc.stdout + proc.stderr
    # each rank trained on its own half of the train clips: together all of them, none twice
    train_rows = set(np.flatnonzero((HeatmapStore.open(heatmap_store).table.split == "train").to_numpy()))
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    rows = [{row for row, _ in s} for s in seen]
    assert len(seen[0]) == len(seen[1]) == -(-n_train // 2)
    assert rows[0] | rows[1] == train_rows
    assert len(rows[0] & rows[1]) == n_train % 2  # only the padding item (odd count) is seen twice


def test_classification_metrics_against_a_hand_count():
    from train.metrics import classification_metrics

    probs = np.array(
        [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.8, 0.1]]
    )  # argmax 0, 0, 1, 1
    m = classification_metrics(probs, np.array([0, 0, 0, 1]), ["a", "b", "c"])
    assert m["top1"] == 3 / 4  # clip 2 (class a) is predicted b
    assert m["per_class"] == {"a": 2 / 3, "b": 1.0}  # c has no clip: no accuracy
    assert m["mean_class_acc"] == pytest.approx(5 / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert m["top5"] == 1.0


def test_confusion_plot_is_of_the_last_epoch_like_last_pt(heatmap_store, tmp_path, monkeypatch):
    import train.fit as fit_module

    titles = []
    monkeypatch.setattr(fit_module, "plot_confusion", lambda cm, classes, path, title: titles.append(title))
    fit(tiny(heatmap_store, tmp_path / "run", epochs=2), log=_quiet)
    assert len(titles) == 2
    assert titles[-1].endswith("epoch 2 (last.pt)")  # every epoch, not only the best
