"""`actrec-etl extract` on small videos made in the test: the ONNX backend's plumbing, the pose file ingest reads,
bad inputs (one line each, nothing half-written, the other videos still done) and a killed run resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures_video import need, write_onnx_pose_model, write_video
from typer.testing import CliRunner

from etl.cli import app
from etl.common.errors import ActrecError, Interrupted
from etl.stores.cliptable import read_clip_table
from etl.video.options import ExtractOptions

need("av")
from etl.video import extract as extract_module  # noqa: E402
from etl.video.extract import extract_all, extract_video  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _constant_keypoints(n_persons: int = 2, n_joints: int = 17) -> np.ndarray:
    """(N, K, 3) x, y inside a 48x32 input, score 0.8."""
    kp = np.zeros((n_persons, n_joints, 3), np.float32)
    for n in range(n_persons):
        kp[n, :, 0] = 4 + 2 * np.arange(n_joints) * 0.6 + 10 * n
        kp[n, :, 1] = 3 + np.arange(n_joints) * 1.5
        kp[n, :, 2] = 0.8
    return kp


@pytest.fixture
def onnx_model(tmp_path) -> tuple[Path, np.ndarray]:
    kp = _constant_keypoints()
    return write_onnx_pose_model(tmp_path / "pose.onnx", kp, np.array([0.9, 0.1], np.float32)), kp


def _onnx_options(model: Path, **kw) -> ExtractOptions:
    return ExtractOptions(backend="onnx", model=model, **kw)


def test_onnx_backend_plumbing_and_the_pose_file(tmp_path, onnx_model):
    model, kp = onnx_model
    video = write_video(tmp_path / "walk.mp4", 6, width=96, height=64, times=[0, 0.04, 0.08, 0.2, 0.24, 0.28])
    result = extract_video(video, tmp_path / "out" / "walk.npz", _onnx_options(model))
    assert (result.status, result.n_frames, result.n_with_person, result.n_persons) == ("done", 6, 6, 1)
    with np.load(result.out, allow_pickle=False) as f:
        assert f["keypoints"].shape == (6, 1, 17, 2)  # (T, M, V, 2): the person scored 0.1 is dropped
        # the model sees 48x32 (its fixed input), the video is 96x64: coordinates scale by 2 back to the frame
        np.testing.assert_allclose(f["keypoints"][3, 0], kp[0, :, :2] * 2, rtol=1e-6)
        np.testing.assert_allclose(f["scores"][:, 0], 0.8)
        np.testing.assert_allclose(f["timestamps"], [0, 0.04, 0.08, 0.2, 0.24, 0.28])
        assert (int(f["img_h"]), int(f["img_w"])) == (64, 96)
        assert (str(f["backend"]), str(f["layout"]), str(f["video"])) == ("onnx", "coco17", "walk.mp4")
    assert not list((tmp_path / "out").glob(".*"))  # no partial file left


def test_onnx_dynamic_input_gets_the_frame_as_is(tmp_path):
    kp = _constant_keypoints(1)
    model = write_onnx_pose_model(tmp_path / "dyn.onnx", kp, None, size=None)
    video = write_video(tmp_path / "v.mp4", 3)
    result = extract_video(video, tmp_path / "v.npz", _onnx_options(model))
    with np.load(result.out) as f:
        np.testing.assert_allclose(f["keypoints"][0, 0], kp[0, :, :2])


def test_onnx_model_of_the_wrong_signature(tmp_path):
    model = write_onnx_pose_model(tmp_path / "five.onnx", _constant_keypoints(1, 5), None)
    video = write_video(tmp_path / "v.mp4", 3)
    with pytest.raises(
        ActrecError, match=r"five\.onnx: output 0 must be keypoints \(N, 17, 3\) for layout coco17"
    ):
        extract_video(video, tmp_path / "v.npz", _onnx_options(model))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ActrecError, match=r"junk\.onnx: not a loadable ONNX model"):
        extract_video(video, tmp_path / "v.npz", _onnx_options(junk))
    with pytest.raises(ActrecError, match=r"--model .*junk\.onnx is for --backend onnx"):
        extract_video(video, tmp_path / "v.npz", ExtractOptions(model=junk))
    assert not (tmp_path / "v.npz").exists()


def test_extract_then_ingest(tmp_path, onnx_model):
    model, _ = onnx_model
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "a_walk.mp4", 5)
    write_video(tmp_path / "videos" / "b_wave.mkv", 7)
    results = extract_all([tmp_path / "videos"], tmp_path / "poses", _onnx_options(model))
    assert [r.status for r in results] == ["done", "done"]
    (tmp_path / "labels.csv").write_text("clip_id,label_name\na_walk,walk\nb_wave,wave\n")
    args = ["ingest", str(tmp_path / "poses"), "--out", str(tmp_path / "kp.zarr")]
    done = runner.invoke(app, [*args, "--labels", str(tmp_path / "labels.csv")])
    assert done.exit_code == 0, done.output
    assert "format npz: 2 read, 2 kept, 0 rejected" in done.output

    table = read_clip_table(tmp_path / "kp.zarr")
    assert sorted(table["clip_id"]) == ["a_walk", "b_wave"]
    assert sorted(table["n_frames"]) == [5, 7]
    assert set(table["backend"]) == {"onnx"}


def test_bad_videos_in_a_folder_one_line_each_and_the_others_done(tmp_path, onnx_model):
    model, _ = onnx_model
    src = tmp_path / "videos"
    src.mkdir()
    write_video(src / "good.mp4", 4)
    (src / "notes.mp4").write_text("not a video")
    whole = write_video(tmp_path / "whole.mkv", 30).read_bytes()
    (src / "cut.mkv").write_bytes(whole[: len(whole) // 2])
    write_video(src / "huge.mp4", 2, width=320, height=240)
    (src / "readme.txt").write_text("not searched: no video suffix")
    out = tmp_path / "poses"
    args = ["extract", str(src), "--out", str(out), "--backend", "onnx", "--model", str(model)]
    done = runner.invoke(app, [*args, "--max-pixels", str(320 * 240 - 1)])  # huge.mp4 has 320x240 frames
    assert done.exit_code == 1
    failed = [line for line in done.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 3
    assert any("notes.mp4: not a readable video" in line for line in failed)
    assert any("cut.mkv: truncated video" in line for line in failed)
    assert any("huge.mp4: 320x240 frames exceed max_pixels=76799" in line for line in failed)
    assert "Traceback" not in done.output
    assert "error: 1 extracted, 0 skipped, 3 failed" in done.output
    assert sorted(p.name for p in out.iterdir()) == ["good.npz"]  # nothing half-written
    again = extract_all([src], out, _onnx_options(model))  # the default max_pixels lets huge.mp4 through
    assert {r.video.name: r.status for r in again} == {
        "cut.mkv": "failed",
        "good.mp4": "skipped",
        "huge.mp4": "done",
        "notes.mp4": "failed",
    }


def test_a_video_with_no_person_writes_nothing(tmp_path):
    model = write_onnx_pose_model(
        tmp_path / "m.onnx", _constant_keypoints(), np.array([0.1, 0.2], np.float32)
    )
    video = write_video(tmp_path / "empty_room.mp4", 4)
    with pytest.raises(ActrecError, match=r"empty_room\.mp4: no person found in any of its 4 frames"):
        extract_video(video, tmp_path / "e.npz", _onnx_options(model))
    assert list(tmp_path.glob("*.npz")) == []


class _EveryOtherFrame:
    """A backend that finds one person on even frames only (frames with no person)."""

    name, calls = "fake", 0

    def __init__(self, layout):
        self.layout = layout

    def __call__(self, rgb):
        self.calls += 1
        if self.calls % 2 == 0:
            return np.zeros((0, 17, 2), np.float32), np.zeros((0, 17), np.float32)
        return _constant_keypoints(1)[..., :2], np.full((1, 17), 0.7, np.float32)

    def close(self):
        pass


def test_frames_with_no_person_are_missing_joints(tmp_path, monkeypatch):
    monkeypatch.setattr(
        extract_module, "make_backend", lambda name, *, layout, **kw: _EveryOtherFrame(layout)
    )
    result = extract_video(write_video(tmp_path / "v.mp4", 6), tmp_path / "v.npz")
    assert (result.n_frames, result.n_with_person) == (6, 3)
    with np.load(result.out) as f:
        present = np.isfinite(f["keypoints"][:, 0, :, 0]).all(axis=1)
        assert present.tolist() == [True, False] * 3
        assert (f["scores"][1::2] == 0).all()


_SLOW_RUN = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from pathlib import Path
    from etl.video import extract

    class Slow:
        name = "slow"
        def __init__(self, layout):
            self.layout = layout
        def __call__(self, rgb):
            time.sleep(0.05)
            xy = np.stack([np.linspace(5, 40, 17), np.linspace(5, 30, 17)], axis=1)[None].astype(np.float32)
            return xy, np.ones((1, 17), np.float32)
        def close(self):
            pass

    extract.make_backend = lambda name, *, layout, **kw: Slow(layout)
    extract.extract_all([Path(sys.argv[1])], Path(sys.argv[2]))
    """
)


@pytest.mark.slow
def test_a_killed_extract_resumes(tmp_path):
    src = tmp_path / "videos"
    src.mkdir()
    for i in range(4):
        write_video(src / f"clip{i}.mp4", 10)
    out = tmp_path / "poses"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_RUN, str(src), str(out)], env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    while not (out / "clip0.npz").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = sorted(p.name for p in out.glob("*.npz"))
    assert "clip0.npz" in finished
    assert len(finished) < 4
    for name in finished:  # whatever ingest would read is complete
        with np.load(out / name) as f:
            assert f["keypoints"].shape == (10, 1, 17, 2)
    first = (out / "clip0.npz").stat().st_mtime_ns
    done = subprocess.run(
        [sys.executable, "-c", _SLOW_RUN, str(src), str(out)], env=env, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0
    assert sorted(p.name for p in out.iterdir()) == [f"clip{i}.npz" for i in range(4)]  # no partial left
    assert (out / "clip0.npz").stat().st_mtime_ns == first  # skipped, not extracted again


class _CtrlC(_EveryOtherFrame):
    def __call__(self, rgb):
        raise KeyboardInterrupt


def test_ctrl_c_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(extract_module, "make_backend", lambda name, *, layout, **kw: _CtrlC(layout))
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "v.mp4", 3)
    with pytest.raises(
        Interrupted, match=r"interrupted during .*v\.mp4: 0 videos extracted .* run the same command"
    ):
        extract_all([tmp_path / "videos"], tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
