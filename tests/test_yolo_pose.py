"""yolo-pose: Ultralytics --save-txt label folders and to_json() output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_pose import confidences, moving_poses

from etl.pose.clip import PoseClip, Reject
from etl.pose.skeleton import COCO17
from etl.readers import ReadOptions, detect_format, read_source

W, H = 640, 480


def read_all(paths, **options) -> list[PoseClip | Reject]:
    return list(read_source([Path(p) for p in paths], "yolo-pose", ReadOptions(layout=COCO17, **options)))


def _write_txt_clip(
    folder: Path, kp: np.ndarray, sc: np.ndarray, *, conf: bool, track: bool, skip=()
) -> Path:
    """kp (M, T, 17, 2) pixels -> <folder>/clip_<t+1>.txt lines 'cls cx cy w h (x y v)*17 [conf] [id]', normalised;
    keypoints below 0.5 confidence written as 0 0 like Ultralytics."""
    folder.mkdir(parents=True)
    for t in range(kp.shape[1]):
        if t in skip:
            continue
        lines = []
        for m in range(kp.shape[0]):
            xy = kp[m, t] / (W, H)
            xy[sc[m, t] < 0.5] = 0
            box = [0.5, 0.5, 0.2, 0.6]
            values = [*box, *np.concatenate([xy, sc[m, t, :, None]], -1).reshape(-1)]
            tail = ([f"{0.9 - 0.2 * m:.4f}"] if conf else []) + ([str(5 + m)] if track else [])
            lines.append(" ".join(["0", *(f"{v:.6f}" for v in values), *tail]))
        (folder / f"clip_{t + 1}.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize(("conf", "track"), [(False, False), (True, False), (False, True), (True, True)])
def test_yolo_txt_labels(tmp_path, conf, track):
    kp, sc = moving_poses(2, 6, 17, img_h=H, img_w=W), confidences((2, 6, 17))
    sc[0] = np.clip(sc[0] + 0.3, 0, 0.99)  # person 0 the more confident (the order without conf or track ids)
    folder = _write_txt_clip(tmp_path / "walk_01", kp, sc, conf=conf, track=track, skip=(3,))
    assert detect_format([folder]) == "yolo-pose"
    (reject,) = read_all([folder])
    assert isinstance(reject, Reject)
    assert "--image-size" in reject.reason
    (clip,) = read_all([folder], image_size=(H, W))
    assert clip.clip_id == "walk_01"
    assert clip.keypoints.shape == (2, 6, 17, 2)
    assert (clip.img_h, clip.img_w) == (H, W)
    expected = kp.copy()
    expected[sc < 0.5] = np.nan  # zeroed by Ultralytics: missing
    expected[:, 3] = np.nan  # no file for frame 4: an empty frame
    np.testing.assert_allclose(clip.keypoints, expected, atol=1e-2)
    assert (clip.scores[sc < 0.5] == 0).all()


def test_yolo_to_json_frames_with_track_ids(tmp_path):
    kp, sc = moving_poses(2, 5, 17, img_h=H, img_w=W, seed=2), confidences((2, 5, 17))
    frames = []
    for t in range(5):
        dets = []
        for m in (1, 0):  # written in the other order: the track id decides the slot
            xy = kp[m, t].copy()
            xy[sc[m, t] < 0.5] = 0
            dets.append({"name": "person", "class": 0, "confidence": 0.8, "track_id": 11 + m,
                         "box": {"x1": 1.0, "y1": 2.0, "x2": 100.0, "y2": 300.0},
                         "keypoints": {"x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(),
                                       "visible": sc[m, t].tolist()}})  # fmt: skip
        frames.append(dets)
    path = tmp_path / "cam3.json"
    path.write_text(json.dumps(frames))
    assert detect_format([path]) == "yolo-pose"
    (clip,) = read_all([path])
    expected = kp.copy()
    expected[sc < 0.5] = np.nan
    np.testing.assert_allclose(clip.keypoints, expected, atol=1e-4)
    folder = tmp_path / "per_frame"
    folder.mkdir()
    for t, dets in enumerate(frames):
        (folder / f"frame_{t:04d}.json").write_text(json.dumps(dets))
    assert detect_format([folder]) == "yolo-pose"
    (clip,) = read_all([folder])
    np.testing.assert_allclose(clip.keypoints, expected, atol=1e-4)


def test_yolo_txt_with_a_wrong_joint_count(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "c_1.txt").write_text("0 " + " ".join(["0.5"] * (4 + 3 * 26)) + "\n")
    (reject,) = read_all([folder], image_size=(H, W))
    assert "do not fit 'cls cx cy w h' + 17 keypoints" in reject.reason


def test_cli_image_size_and_to_layout(tmp_path):
    from typer.testing import CliRunner

    from etl.cli import app
    from etl.stores.keypoint_store import KeypointStore

    kp, sc = moving_poses(1, 4, 17, img_h=H, img_w=W), confidences((1, 4, 17))
    folder = _write_txt_clip(tmp_path / "src" / "jump_2", kp, sc, conf=True, track=False)
    manifest = tmp_path / "m.csv"
    manifest.write_text("clip_id,label_name\njump_2,jump\n")
    out = tmp_path / "kp"
    args = ["ingest", str(folder), "--out", str(out), "--labels", str(manifest), "--image-size", f"{W}x{H}",
            "--to-layout", "posetrack17"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "coco17 has no joint named head_bottom, head_top" in result.output
    result = CliRunner().invoke(app, [*args[:-2], "--to-layout", "crowdpose14"])
    assert result.exit_code == 1
    assert "no joint named head, neck" in result.output
    result = CliRunner().invoke(app, args[:-2])
    assert result.exit_code == 0, result.output
    assert "format yolo-pose: 1 read, 1 kept" in result.output
    store = KeypointStore.open(out)
    assert store.attrs["ingest"]["image_size"] == [H, W]
    bad = CliRunner().invoke(
        app, ["ingest", str(folder), "--out", str(tmp_path / "x"), "--image-size", "640"]
    )
    assert bad.exit_code == 1
    assert "WIDTHxHEIGHT" in bad.output
