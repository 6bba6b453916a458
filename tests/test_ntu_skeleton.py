"""ntu-skeleton: NTU RGB+D raw .skeleton files, file-name metadata, official splits, missing-skeleton rejects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_formats import ntu_bodies, write_ntu_skeleton

from etl.commands.ingest import ingest
from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject
from etl.pose.skeleton import COCO17, NTU25
from etl.readers import ReadOptions, detect_format, read_source
from etl.readers.ntu_classes import CLASSES
from etl.stores.cliptable import read_clip_table, read_rejects

IDS = ["72057594037931101", "72057594037931102"]


def read_all(paths, **options) -> list[PoseClip | Reject]:
    return list(read_source([Path(p) for p in paths], "ntu-skeleton", ReadOptions(layout=NTU25, **options)))


def test_ntu_actions_are_the_published_120():
    assert len(CLASSES) == 120
    assert CLASSES[0] == "drink water"
    assert CLASSES[59] == "walking apart from each other"
    assert CLASSES[119] == "finger-guessing game (playing rock-paper-scissors)"


def test_ntu_two_bodies_metadata_and_splits(tmp_path):
    bodies = ntu_bodies(2, 20, seed=1)
    present = np.ones((2, 20), bool)
    present[1, :5] = False  # the second body enters at frame 5
    bodies[0, 3, 7, 11] = 1  # an inferred joint
    bodies[0, 4, 9, 11] = 0  # a joint Kinect did not track
    path = write_ntu_skeleton(tmp_path / "S001C002P003R002A050.skeleton", bodies, IDS, present)
    (clip,) = read_all([path])
    assert clip.clip_id == "S001C002P003R002A050"
    assert clip.keypoints.shape == (2, 20, 25, 2)
    assert (clip.img_h, clip.img_w) == (1080, 1920)
    expected = bodies[0, :, :, 5:7].copy()
    expected[4, 9] = np.nan  # not tracked: missing
    np.testing.assert_allclose(clip.keypoints[0], expected, atol=1e-3)  # colorX, colorY
    assert np.isnan(clip.keypoints[1, :5]).all()
    assert (clip.scores[1, :5] == 0).all()
    np.testing.assert_allclose(clip.keypoints[1, 5:], bodies[1, 5:, :, 5:7], atol=1e-3)
    assert clip.scores[0, 3, 7] == 0.5
    assert clip.scores[0, 0, 0] == 1.0
    assert np.isnan(clip.keypoints[0, 4, 9]).all()
    assert clip.scores[0, 4, 9] == 0
    assert (clip.label, clip.label_name) == (49, "punching/slapping other person")
    assert clip.meta == {
        "setup": 1,
        "camera": 2,
        "subject": 3,
        "replication": 2,
        "split_xsub": "test",  # subject 3 is not a training subject
        "split_xview": "train",  # camera 2 trains
        "split_xset": "test",  # odd setup
    }
    assert clip.split == "test"
    (clip,) = read_all([path], split_protocol="xview")
    assert clip.split == "train"


def test_ntu_person_order_by_tracked_frames(tmp_path):
    bodies = ntu_bodies(2, 10, seed=2)
    present = np.ones((2, 10), bool)
    present[0, 6:] = False  # the first body to appear leaves early: the longer track becomes person 0
    path = write_ntu_skeleton(tmp_path / "S002C001P001R001A001.skeleton", bodies, IDS, present)
    (clip,) = read_all([path])
    np.testing.assert_allclose(clip.keypoints[0], bodies[1, :, :, 5:7], atol=1e-3)


@pytest.mark.parametrize(("coords", "size", "columns"), [("depth", (424, 512), slice(3, 5))])
def test_ntu_depth_coordinates(tmp_path, coords, size, columns):
    bodies = ntu_bodies(1, 6)
    path = write_ntu_skeleton(tmp_path / "S003C003P008R001A023.skeleton", bodies, IDS[:1])
    (clip,) = read_all([path], coords=coords)
    assert (clip.img_h, clip.img_w) == size
    assert clip.split == "train"
    np.testing.assert_allclose(clip.keypoints[0], bodies[0, :, :, columns], atol=1e-3)


def test_ntu_3d_projection_matches_the_depth_frame(tmp_path):
    bodies = ntu_bodies(1, 6)
    path = write_ntu_skeleton(tmp_path / "S003C003P008R001A023.skeleton", bodies, IDS[:1])
    (clip,) = read_all([path], coords="3d")
    np.testing.assert_allclose(clip.keypoints[0], bodies[0, :, :, 3:5], atol=1e-2)  # fixture: same intrinsics
    (ortho,) = read_all([path], coords="3d", project="ortho")
    assert np.isfinite(ortho.keypoints).all()
    assert not np.allclose(ortho.keypoints, clip.keypoints)


def test_ntu_missing_skeleton_list_and_bad_files_are_rejects(tmp_path):
    folder = tmp_path / "nturgb+d_skeletons"
    folder.mkdir()
    write_ntu_skeleton(folder / "S001C001P001R001A001.skeleton", ntu_bodies(1, 5), IDS[:1])
    write_ntu_skeleton(folder / "S001C001P001R001A002.skeleton", ntu_bodies(1, 0), IDS[:1])  # listed, empty
    (folder / "NTU_RGBD_samples_with_missing_skeletons.txt").write_text(
        "S001C001P001R001A002\nS017C003P020R002A060\n"
    )
    good = (folder / "S001C001P001R001A001.skeleton").read_text()
    (folder / "S001C001P001R001A003.skeleton").write_text(good[: len(good) // 2])  # truncated
    (folder / "S001C001P001R001A004.skeleton").write_text("3\r\n0\r\n0\r\n0\r\n")  # nobody in any frame
    assert detect_format([folder]) == "ntu-skeleton"
    items = read_all([folder])
    kept = [i for i in items if isinstance(i, PoseClip)]
    rejects = {r.clip_id: r.reason for r in items if isinstance(r, Reject)}
    assert [c.clip_id for c in kept] == ["S001C001P001R001A001"]
    assert "ends inside" in rejects["S001C001P001R001A003"]
    assert "truncated" in rejects["S001C001P001R001A003"]
    assert "no body in any of its 3 frames" in rejects["S001C001P001R001A004"]
    for name in ("S001C001P001R001A002", "S017C003P020R002A060"):
        assert "listed in NTU_RGBD_samples_with_missing_skeletons.txt" in rejects[name]


def test_ntu_bad_options():
    with pytest.raises(ActrecError, match="choose one of xsub, xview, xset"):
        read_source([Path(__file__)], "ntu-skeleton", ReadOptions(layout=NTU25, split_protocol="xcam"))
    with pytest.raises(ActrecError, match="choose one of color, depth, 3d"):
        read_source([Path(__file__)], "ntu-skeleton", ReadOptions(layout=NTU25, coords="rgb"))


def test_ntu_ingest_auto_numeric_labels(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("S001C001P001R001A001", "S001C001P002R001A010", "S002C002P001R002A010"):
        write_ntu_skeleton(src / f"{name}.skeleton", ntu_bodies(1, 8), IDS[:1])
    report = ingest([src], out=tmp_path / "kp", fmt="auto", options=ReadOptions(layout=NTU25))
    assert report.fmt == "ntu-skeleton"
    assert report.n_kept == 3
    table = read_clip_table(tmp_path / "kp")
    assert list(table.label) == [0, 9, 9]
    assert list(table.camera) == [1, 1, 2]
    assert report.classes[9] == "clapping"
    assert len(report.classes) == 10
    assert len(read_rejects(tmp_path / "kp")) == 0


def test_auto_names_the_format_when_every_clip_is_rejected(tmp_path):
    (tmp_path / "S001C001P001R001A001.skeleton").write_text("2\r\n0\r\n0\r\n")
    with pytest.raises(ActrecError, match="format ntu-skeleton: 1 read, 0 kept, 1 rejected"):
        ingest([tmp_path], out=tmp_path.parent / "kp_none", fmt="auto", options=ReadOptions(layout=COCO17))
