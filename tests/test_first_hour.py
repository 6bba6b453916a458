"""What a new user trips over in the first hour (issue 14): one-line errors that say what is wrong, commands
that accept what a user naturally hands them."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import etl
from etl.cli import app as etl_app
from etl.errors import ActrecError
from train.cli import app as train_app

runner = CliRunner()


def test_read_clips_on_a_missing_path_says_it_does_not_exist(tmp_path):
    with pytest.raises(ActrecError, match=r"nope.zarr does not exist"):
        etl.read_clips(tmp_path / "nope.zarr")


def test_a_store_of_the_other_kind_is_named_with_its_article(keypoint_store):
    from etl.heatmap_store import HeatmapStore

    with pytest.raises(ActrecError, match=r"is an actrec.keypoints store, expected actrec.heatmaps"):
        HeatmapStore.open(keypoint_store)


def test_evaluate_on_a_text_file_names_the_file_and_what_was_expected(keypoint_store, tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("epoch,train_loss\n1,2.0\n")
    result = runner.invoke(train_app, ["evaluate", str(metrics), str(keypoint_store)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(metrics) in lines[0] and "pop from" not in lines[0]
    assert "expected a .pt checkpoint" in lines[0] and "text starting 'epoch,train_loss'" in lines[0]


def test_show_draws_a_keypoint_store_clip(keypoint_store, tmp_path):
    clip_id = etl.read_clips(keypoint_store).clip_id[0]
    out = tmp_path / "strip.png"
    result = runner.invoke(etl_app, ["show", str(keypoint_store), clip_id, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
