"""`actrec-etl report`: the results table, --json, the self-contained HTML page, and nothing-to-report errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from etl.cli import app
from etl.commands import report as pipeline_report
from etl.common.errors import ActrecError

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("c3d", "cnn_lstm", "cnn_lstm_attn", "stgcnpp")  # the evaluate foreach of dvc.yaml


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _one_run(root: Path, model: str = "c3d", top1: float = 0.8125) -> Path:
    """runs/<model> as the pipeline leaves it: eval.json, metrics.json and a real curves PNG."""
    from train.plots import plot_curves

    (root / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    run_dir = root / "runs" / model
    (run_dir / "plots").mkdir(parents=True)
    ev = {"top1": top1, "top5": 1.0, "mean_class_acc": 0.8, "n_clips": 80, "clips": 10, "flip": True}
    (run_dir / "eval.json").write_text(json.dumps(ev))
    (run_dir / "metrics.json").write_text(json.dumps({"epochs": 20}))
    (run_dir / "timing.json").write_text(json.dumps({"train_time_s": 81.2}))
    epochs = np.arange(1, 6)
    history = pd.DataFrame(
        {
            "epoch": epochs,
            "train_loss": 2.0 / epochs,
            "val_loss": 2.2 / epochs,
            "train_top1": 1 - 1 / (epochs + 1),
            "val_top1": 1 - 1.2 / (epochs + 1),
            "val_mean_class_acc": 1 - 1.3 / (epochs + 1),
        }
    )
    plot_curves(history, run_dir / "plots" / "curves.png", model)
    return run_dir


def test_table_lists_every_pipeline_model(tmp_path):
    _one_run(tmp_path)
    rows = pipeline_report.summary_rows(tmp_path)
    assert [r["model"] for r in rows] == list(MODELS)
    assert rows[0]["top1"] == 0.8125
    assert rows[1]["top1"] is None
    table = pipeline_report.format_table(rows, tmp_path)
    assert "81.2" in table
    assert "100.0" in table
    assert "10 + flip" in table
    assert "not evaluated yet: cnn_lstm, cnn_lstm_attn, stgcnpp" in table
    assert "curves.png" in table
    assert "actrec-etl report --html" in table


def test_the_fused_run_is_the_last_row(tmp_path):
    """runs/fused/eval.json (the fuse stage) is shown after the models, with what it fused."""
    _one_run(tmp_path)
    assert [r["model"] for r in pipeline_report.summary_rows(tmp_path)] == list(MODELS)  # none yet: no row
    fused = tmp_path / "runs" / "fused"
    fused.mkdir()
    inputs = [
        {"eval": f"runs/{m}/eval.json", "model": m, "weight": w}
        for m, w in zip(MODELS, (2, 1, 1, 1), strict=True)
    ]
    ev = {
        "top1": 0.9375,
        "top5": 1.0,
        "mean_class_acc": 0.925,
        "n_clips": 80,
        "model": "fused",
        "inputs": inputs,
    }
    (fused / "eval.json").write_text(json.dumps(ev))
    rows = pipeline_report.summary_rows(tmp_path)
    assert [r["model"] for r in rows] == [*MODELS, "fused"]
    assert rows[-1]["fused_from"] == "c3d x2 + cnn_lstm x1 + cnn_lstm_attn x1 + stgcnpp x1"
    table = pipeline_report.format_table(rows, tmp_path)
    assert any(line.startswith("fused ") and "93.8" in line for line in table.splitlines()), table
    assert (
        "fused: per clip, the weighted sum of c3d x2 + cnn_lstm x1 + cnn_lstm_attn x1 + stgcnpp x1" in table
    )
    page = pipeline_report.html_report(rows)
    assert "<td>fused</td><td>93.8</td>" in page
    assert "<h2>fused</h2>" not in page  # no pictures section for the fusion


def test_json_rows_from_the_cli(tmp_path):
    _one_run(tmp_path, top1=0.5)
    done = CliRunner().invoke(app, ["report", "--root", str(tmp_path), "--json"])
    assert done.exit_code == 0, done.output
    rows = json.loads(done.stdout)
    assert [r["model"] for r in rows] == list(MODELS)
    assert rows[0]["top1"] == 0.5


@pytest.mark.parametrize("with_dvc_yaml", [False, True])
def test_nothing_to_report_is_an_error(tmp_path, with_dvc_yaml):
    if with_dvc_yaml:
        (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    with pytest.raises(ActrecError, match="nothing to report"):
        pipeline_report.require_results(pipeline_report.summary_rows(tmp_path), tmp_path)
    done = CliRunner().invoke(app, ["report", "--root", str(tmp_path)])
    assert done.exit_code == 1
    assert "nothing to report" in done.output
    assert "Traceback" not in done.output
    assert pipeline_report.main(["--root", str(tmp_path), "--json"]) == 1


def test_html_page_is_self_contained(tmp_path):
    run_dir = _one_run(tmp_path)
    done = CliRunner().invoke(app, ["report", "--root", str(tmp_path), "--html"])
    assert done.exit_code == 0, done.output
    page = (tmp_path / "runs" / "report.html").read_text()
    assert '<table id="results">' in page
    assert "81.2" in page
    png = (run_dir / "plots" / "curves.png").read_bytes()
    import base64

    assert base64.b64encode(png).decode() in page  # the picture itself, not a link to it
    for external in ("http://", "https://", "<script", 'src="static/', 'src="runs/'):
        assert external not in page, external


def test_html_escapes_what_comes_from_files(tmp_path):
    rows = pipeline_report.summary_rows(tmp_path, models=["<b>x</b>"])
    page = pipeline_report.html_report(rows)
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_page_shows_its_pictures_offline_in_a_browser(tmp_path):
    """A headless browser with no network draws the page: the curves' coloured lines must be on screen."""
    browser = _chromium()
    if browser is None:
        if _in_ci():
            pytest.fail("CI=true but no chromium: .ci/run installs it")
        pytest.skip("no chromium here (apt-get install chromium)")
    _one_run(tmp_path)
    assert pipeline_report.main(["--root", str(tmp_path), "--html"]) == 0
    shot = tmp_path / "shot.png"
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--proxy-server=127.0.0.1:9",  # nothing can load from outside: the page must not need it
        "--window-size=1200,1400",
        f"--screenshot={shot}",
        (tmp_path / "runs" / "report.html").as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    import matplotlib.image

    rgb = matplotlib.image.imread(shot)[..., :3]  # (H, W, 3) in [0, 1]
    # matplotlib's default blue (C0, #1f77b4) and orange (C1, #ff7f0e) lines of the curves picture
    blue = (np.abs(rgb - np.array([0x1F, 0x77, 0xB4]) / 255).max(axis=-1) < 0.08).sum()
    orange = (np.abs(rgb - np.array([0xFF, 0x7F, 0x0E]) / 255).max(axis=-1) < 0.08).sum()
    assert blue > 200, (blue, orange)
    assert orange > 200, (blue, orange)


def test_module_entry_point_runs(tmp_path):
    _one_run(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "etl.commands.report", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "c3d" in done.stdout, done.stderr
