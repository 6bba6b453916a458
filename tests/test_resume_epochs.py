"""Extending a run (#26): `fit --resume` with another `--epochs` says, in one line, that the cosine schedule is
recomputed for the new total from the resumed epoch on (so the result is not an uninterrupted run's)."""

from __future__ import annotations

from typer.testing import CliRunner

from train.checkpoint import load_checkpoint
from train.cli import app

runner = CliRunner()
NOTE = "the cosine schedule is recomputed for"


def _fit(store, out, epochs: int, *extra: str) -> list[str]:
    args = [
        "fit",
        str(store),
        "--model",
        "c3d",
        "--preset",
        "tiny",
        "--out",
        str(out),
        "--epochs",
        str(epochs),
    ]
    args += ["--clip-len", "8", "--batch-size", "4", "--lr", "1e-3", "--seed", "1", "--workers", "0", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_resume_with_other_epochs_says_the_schedule_is_recomputed(heatmap_store, tmp_path):
    run = tmp_path / "run"
    assert not any(NOTE in line for line in _fit(heatmap_store, run, 1))
    lines = _fit(heatmap_store, run, 2, "--resume")
    notes = [line for line in lines if NOTE in line]
    assert notes == [
        "note: 2 epochs (--epochs or the preset's), but this run was started with 1: the cosine schedule is "
        "recomputed for 2 "
        "epochs from epoch 2 on, so the result differs from an uninterrupted 2-epoch run (--overwrite trains one)"
    ]
    assert any("resuming" in line and "epoch 2/2" in line for line in lines)
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # epoch 2 (0-based 1) was trained
    # the checkpoint now records the new total: resuming it again with the same --epochs says nothing
    again = _fit(heatmap_store, run, 2, "--resume")
    assert not any(NOTE in line for line in again)
    assert any("nothing to train" in line for line in again)
