"""`--format auto` over real dataset folders (issue 26): READMEs, licences, images and hidden files beside the
pose files are ignored and counted; only pose files of different formats mixed together are refused."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_pose import confidences, moving_poses, write_h5_clip, write_npz_clip, write_openpose_clip
from typer.testing import CliRunner

from etl.cli import app
from etl.common.errors import ActrecError
from etl.readers import detect_format, detect_source

runner = CliRunner()


def _openpose_folder(tmp_path):
    kp, sc = moving_poses(1, 5, 18, seed=2), confidences((1, 5, 18))
    clip = write_openpose_clip(tmp_path / "dataset" / "walk_01", kp, sc)
    folder = clip.parent
    (folder / "README.txt").write_text("OpenPose output of the walk videos, CC-BY 4.0\n")
    (folder / "LICENSE.md").write_text("# License\n")
    (folder / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (clip / ".DS_Store").write_bytes(bytes(16))
    return folder


def test_openpose_folder_with_readme_and_image_ingests_with_format_auto(tmp_path):
    folder = _openpose_folder(tmp_path)
    detection = detect_source([folder])
    assert detection.fmt == "openpose-json"
    assert sorted(p.name for p in detection.ignored) == [".DS_Store", "LICENSE.md", "README.txt", "cover.png"]
    labels = tmp_path / "labels.csv"
    labels.write_text("clip_id,label_name\nwalk_01,walk\n")
    out = tmp_path / "kp.zarr"
    args = ["ingest", str(folder), "--layout", "openpose18", "--labels", str(labels), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "format openpose-json: 1 read, 1 kept, 0 rejected" in result.output
    assert "ignored 4 file(s) in the input folders that are no pose files" in result.output


def test_pose_files_of_two_formats_in_one_folder_are_refused_naming_both(tmp_path):
    kp, sc = moving_poses(1, 4, 17), confidences((1, 4, 17))
    write_h5_clip(tmp_path / "a.h5", kp, sc, {})
    write_npz_clip(tmp_path / "b.npz", kp, sc)
    (tmp_path / "README.md").write_text("two formats\n")
    with pytest.raises(ActrecError, match=r"different formats \(h5: .*a\.h5; npz: .*b\.npz\)"):
        detect_format([tmp_path])


def test_a_folder_without_pose_files_says_what_it_ignored(tmp_path):
    (tmp_path / "README.txt").write_text("nothing here yet\n")
    (tmp_path / "photo.jpg").write_bytes(bytes(32))
    with pytest.raises(ActrecError, match=r"cannot tell the format .*\(2 other file\(s\) ignored\)"):
        detect_format([tmp_path])


def test_a_readme_inside_a_yolo_clip_folder_is_no_frame(tmp_path):
    from etl.pose.clip import PoseClip
    from etl.pose.skeleton import COCO17
    from etl.readers import ReadOptions, read_source

    kp, sc = moving_poses(1, 4, 17, img_h=480, img_w=640), confidences((1, 4, 17))
    folder = tmp_path / "walk"
    folder.mkdir()
    for t in range(4):  # YOLO label files: class, box, (x y v) * 17, normalised
        xyv = np.concatenate([kp[0, t] / (640, 480), sc[0, t, :, None]], -1).reshape(-1)
        (folder / f"walk_{t + 1}.txt").write_text(" ".join(["0", "0.5", "0.5", "0.2", "0.6", *map(str, xyv)]))
    (folder / "README.txt").write_text("labels exported from Ultralytics\n")  # .txt, but no label file
    (folder / ".notes.txt").write_text("hidden\n")
    assert [p.name for p in detect_source([tmp_path]).ignored] == [".notes.txt", "README.txt"]
    (clip,) = read_source([tmp_path], "auto", ReadOptions(COCO17, image_size=(480, 640)))
    assert isinstance(clip, PoseClip), clip.reason
    assert clip.keypoints.shape == (1, 4, 17, 2)  # the four label files, README and hidden file left out
