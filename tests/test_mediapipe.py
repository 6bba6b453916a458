"""mediapipe: the 33-landmark CSV (wide and long) and JSON exports people write."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from fixtures_pose import confidences, moving_poses

from etl.pose.clip import PoseClip, Reject
from etl.pose.skeleton import MEDIAPIPE33
from etl.readers import ReadOptions, detect_format, read_source

W, H = 1280, 720


def read_all(paths, **options) -> list[PoseClip | Reject]:
    return list(
        read_source([Path(p) for p in paths], "mediapipe", ReadOptions(layout=MEDIAPIPE33, **options))
    )


def _poses(n_frames: int = 8):
    kp = moving_poses(1, n_frames, 33, img_h=H, img_w=W, seed=5)
    vis = confidences((1, n_frames, 33))
    return kp, vis


def test_mediapipe_wide_csv_with_names_and_a_gap(tmp_path):
    kp, vis = _poses()
    path = tmp_path / "squat_04.csv"
    header = ["frame"] + [f"{n}_{c}" for n in MEDIAPIPE33.joints for c in ("x", "y", "z", "visibility")]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for t in range(8):
            if t == 5:
                continue  # no pose found in frame 5: no row
            row = [t]
            for j in range(33):
                x, y = kp[0, t, j] / (W, H)
                row += ["" if (t, j) == (2, 4) else f"{x:.6f}", f"{y:.6f}", "-0.1", f"{vis[0, t, j]:.4f}"]
            writer.writerow(row)
    assert detect_format([path]) == "mediapipe"
    (reject,) = read_all([path])
    assert "--image-size" in reject.reason
    (clip,) = read_all([path], image_size=(H, W))
    assert clip.clip_id == "squat_04"
    assert clip.keypoints.shape == (1, 8, 33, 2)
    expected = kp.copy()
    expected[0, 5] = np.nan
    expected[0, 2, 4] = np.nan  # an empty cell
    np.testing.assert_allclose(clip.keypoints, expected, atol=0.01)
    np.testing.assert_allclose(clip.scores[0, 0], vis[0, 0], atol=1e-4)


def test_mediapipe_long_csv_indexed_landmarks(tmp_path):
    kp, vis = _poses(4)
    path = tmp_path / "long.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frame", "landmark", "x", "y", "z", "visibility"])
        for t in range(4):
            for j in range(33):
                x, y = kp[0, t, j] / (W, H)
                writer.writerow([t + 10, j, x, y, 0.0, vis[0, t, j]])
    assert detect_format([path]) == "mediapipe"
    (clip,) = read_all([path], image_size=(H, W))
    np.testing.assert_allclose(clip.keypoints, kp, atol=0.01)


def test_mediapipe_json_frames_and_pixels_refused(tmp_path):
    kp, vis = _poses(3)
    frames = [{"frame": t, "landmarks": [{"x": float(x / W), "y": float(y / H), "z": 0.0, "visibility": float(v)}
               for (x, y), v in zip(kp[0, t], vis[0, t], strict=True)]} for t in range(3)]  # fmt: skip
    path = tmp_path / "wave.json"
    path.write_text(json.dumps(frames))
    assert detect_format([path]) == "mediapipe"
    (clip,) = read_all([path], image_size=(H, W))
    np.testing.assert_allclose(clip.keypoints, kp, atol=0.01)
    for frame in frames:
        for lm in frame["landmarks"]:
            lm["x"] *= W
    path.write_text(json.dumps(frames))
    (reject,) = read_all([path], image_size=(H, W))
    assert isinstance(reject, Reject)
    assert "not normalised" in reject.reason
