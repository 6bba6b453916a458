"""What a new user trips over in the first hour (issue 14): one-line errors that say what is wrong, commands
that accept what a user naturally hands them."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import etl
from etl.cli import app as etl_app
from etl.common.errors import ActrecError
from train.cli import app as train_app

runner = CliRunner()


def test_read_clips_on_a_missing_path_says_it_does_not_exist(tmp_path):
    with pytest.raises(ActrecError, match=r"nope.zarr does not exist"):
        etl.read_clips(tmp_path / "nope.zarr")


def test_a_store_of_the_other_kind_is_named_with_its_article(keypoint_store):
    from etl.stores.heatmap_store import HeatmapStore

    with pytest.raises(ActrecError, match=r"is an actrec.keypoints store, expected actrec.heatmaps"):
        HeatmapStore.open(keypoint_store)


def test_evaluate_on_a_text_file_names_the_file_and_what_was_expected(keypoint_store, tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("epoch,train_loss\n1,2.0\n")
    result = runner.invoke(train_app, ["evaluate", str(metrics), str(keypoint_store)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert str(metrics) in lines[0]
    assert "pop from" not in lines[0]
    assert "expected a .pt checkpoint" in lines[0]
    assert "text starting 'epoch,train_loss'" in lines[0]


def test_show_draws_a_keypoint_store_clip(keypoint_store, tmp_path):
    clip_id = etl.read_clips(keypoint_store).clip_id[0]
    out = tmp_path / "strip.png"
    result = runner.invoke(etl_app, ["show", str(keypoint_store), clip_id, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5000


def test_a_failed_render_leaves_no_partial_folder(keypoint_store, tmp_path, monkeypatch):
    import etl.commands.render as render_module
    from etl.heatmaps.spec import RenderSpec
    from etl.stores.storeio import partial_path

    def fail(*args, **kwargs):
        raise ActrecError("a partition failed")

    monkeypatch.setattr(render_module, "_run_partitions", fail)
    out = tmp_path / "hm.zarr"
    with pytest.raises(ActrecError, match="a partition failed"):
        render_module.render(keypoint_store, out, RenderSpec(size=16))
    assert not out.exists()
    assert not partial_path(out).exists()


def test_no_empty_bar_before_a_validation_error_and_no_unknown_totals(keypoint_store, demo_dir, tmp_path):
    out = tmp_path / "hm.zarr"
    out.mkdir()
    refused = runner.invoke(etl_app, ["render", str(keypoint_store), "-o", str(out)])
    assert refused.exit_code == 1
    assert "already exists" in refused.output
    assert "render" not in refused.output.replace(str(out), "").split("error:")[0]  # no bar before the error
    ingest = runner.invoke(
        etl_app,
        [
            "ingest",
            str(demo_dir / "clips"),
            "--labels",
            str(demo_dir / "clips.csv"),
            "-o",
            str(tmp_path / "k"),
        ],
    )
    assert ingest.exit_code == 0, ingest.output
    assert "/?" not in ingest.output
    assert "ingest" in ingest.output  # a bar, counting clips of unknown number


def test_demo_readme_lists_the_labels_in_the_store_order(demo_dir, keypoint_store):
    from etl.stores.keypoint_store import KeypointStore

    classes = KeypointStore.open(keypoint_store).classes
    line = next(line for line in (demo_dir / "README.md").read_text().splitlines() if line.startswith("`"))
    assert [part.strip().strip("`") for part in line.split(":")[0].split(",")] == classes


def test_download_list_names_only_paths_a_user_has():
    result = runner.invoke(etl_app, ["download", "--list"])
    assert result.exit_code == 0, result.output
    assert "shared/" not in result.output
    assert "DEST" not in result.output
    assert "actrec-etl ingest data/downloads/utd-mhad-skeleton --format utd-mhad" in result.output


def test_a_missing_split_shows_as_a_dash_not_nan(tmp_path):
    import pandas as pd

    from etl.stores.cliptable import CLIPS_FILE

    store = tmp_path / "s.zarr"
    store.mkdir()
    pd.DataFrame(
        {"clip_id": ["a", "b"], "label_name": ["x", "y"], "split": ["train", None], "n_frames": [3, 4],
         "n_persons": [1, 1]}
    ).to_parquet(store / CLIPS_FILE, index=False)  # fmt: skip
    result = runner.invoke(etl_app, ["query", str(store), "n_frames > 0"])
    assert result.exit_code == 0, result.output
    row_b = next(line for line in result.output.splitlines() if " b " in line)
    assert "nan" not in result.output
    assert " - " in row_b
