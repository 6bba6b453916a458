"""`actrec-train predict CKPT VIDEO` end to end on the first 40 frames of the shared real video: poses extracted
(and cached), the model's label printed, `--overlay` written as .mp4 and .gif with one frame per video frame."""

from __future__ import annotations

import pytest
from conftest import SHARED
from fixtures_train import tiny
from fixtures_video import first_frames, need
from typer.testing import CliRunner

av = need("av")
need("mediapipe")
from train.cli import app  # noqa: E402
from train.fit import fit  # noqa: E402

pytestmark = [pytest.mark.shared, pytest.mark.slow]
runner = CliRunner()


def _frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_predict_a_video_with_overlays(heatmap_store, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    video = first_frames(SHARED / "videos" / "sports2d_demo.mp4", tmp_path / "clip.mp4", 40)
    run = tmp_path / "run"
    fit(tiny(heatmap_store, run, epochs=1), log=lambda *a, **k: None)
    checkpoint = run / "best.pt"

    done = runner.invoke(app, ["predict", str(checkpoint), str(video), "--overlay", str(tmp_path / "o.mp4")])
    assert done.exit_code == 0, done.output
    assert "probability" in done.output
    assert _frames(tmp_path / "o.mp4") == 40
    cached = list((tmp_path / "cache" / "actrec" / "video-poses").rglob("*.npz"))
    assert [p.name for p in cached] == ["clip.npz"]

    args = ["predict", str(checkpoint), str(video), "--window", "16", "--stride", "8"]
    windows = runner.invoke(app, [*args, "--overlay", str(tmp_path / "o.gif")])
    assert windows.exit_code == 0, windows.output
    assert "0-15" in windows.output
    assert _frames(tmp_path / "o.gif") == 40
    assert list((tmp_path / "cache" / "actrec" / "video-poses").rglob("*.npz")) == cached  # extracted once
    assert not list(tmp_path.glob(".*partial*"))
