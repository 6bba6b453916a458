"""`actrec-etl extract`'s command line without the video extra: its defaults, and the message when it is missing."""

from __future__ import annotations

import dataclasses
import importlib.util

import typer.main
from typer.testing import CliRunner

from etl.cli import app
from etl.video.options import ExtractOptions
from train.cli import app as train_app

runner = CliRunner()


def test_extract_options_default_to_the_extract_options_fields():
    command = typer.main.get_command(app).commands["extract"]
    options = {p.name: p.default for p in command.params if not p.required}
    assert options == {f.name: f.default for f in dataclasses.fields(ExtractOptions)}


def test_without_the_video_extra_one_line(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a)
    )
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0")
    done = runner.invoke(app, ["extract", str(video), "--out", str(tmp_path / "out")])
    assert done.exit_code == 1
    assert (
        done.output.strip()
        == "error: extracting poses from videos needs the video extra: pip install 'actrec[video]'"
    )
    assert not (tmp_path / "out").exists()


def test_overlay_needs_a_video(tmp_path):
    pose = tmp_path / "clip.npz"
    pose.write_bytes(b"")
    ckpt = tmp_path / "x.pt"
    ckpt.write_bytes(b"")
    done = runner.invoke(train_app, ["predict", str(ckpt), str(pose), "--overlay", str(tmp_path / "o.mp4")])
    assert done.exit_code == 1
    assert "--overlay draws on a video" in done.output


def test_a_folder_without_videos_is_refused_unless_allow_empty(tmp_path):
    """The DVC pipeline's extract stage passes --allow-empty: its default folder (data/videos) holds only a README."""
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "README.md").write_text("put videos here\n")
    out = tmp_path / "poses"
    done = runner.invoke(app, ["extract", str(videos), "--out", str(out)])
    assert done.exit_code == 1
    message = done.output.strip()
    assert message.startswith("error: no video file (.mp4, ")
    assert message.endswith(f") in {videos}")
    assert "\n" not in message  # one line, no traceback
    assert not out.exists()
    done = runner.invoke(app, ["extract", str(videos), "--out", str(out), "--allow-empty"])
    assert done.exit_code == 0, done.output
    assert out.is_dir()
    assert list(out.iterdir()) == []
