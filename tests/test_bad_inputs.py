"""One test per kind of bad input: the Reject reason a user sees, or ActrecError when the whole call is unusable."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures_pose import (
    confidences,
    make_clip,
    moving_poses,
    ntu_like_pyskl,
    pyskl_annotation,
    truncate,
    utd_skeleton,
    write_coco_results,
    write_ddnet_folder,
    write_h5_clip,
    write_malicious_pickle,
    write_manifest,
    write_npz_clip,
    write_openpose_clip,
    write_penn_mat,
    write_pyskl,
    write_utd_mat,
)

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject
from etl.pose.clip_checks import validate_clip
from etl.pose.skeleton import BODY25, COCO17, JHMDB15, KINECT20, PENN13
from etl.readers import ReadOptions, read_source
from etl.readers.safe_pickle import load_pickle


def read_all(paths, fmt, layout=COCO17, **options) -> list[PoseClip | Reject]:
    return list(read_source([Path(p) for p in paths], fmt, ReadOptions(layout=layout, **options)))


def single_reject(items) -> Reject:
    rejects = [item for item in items if isinstance(item, Reject)]
    assert len(rejects) == 1, items
    return rejects[0]


# --- validation ------------------------------------------------------------------------------------------------


def _clip_with_non_finite() -> PoseClip:
    clip = make_clip(n_persons=1, n_frames=10)
    clip.keypoints[0, 4, 1] = np.nan  # NaN on a joint that claims a score of ~0.3-1
    clip.keypoints[0, 6, 2, 0] = np.inf
    clip.keypoints[0, 7, 3] = -np.inf
    return clip


def test_non_finite_coordinates_become_missing_by_default():
    result = validate_clip(_clip_with_non_finite(), COCO17)
    assert isinstance(result, PoseClip)
    for t, v in ((4, 1), (6, 2), (7, 3)):
        assert np.isnan(result.keypoints[0, t, v]).all()
        assert result.scores[0, t, v] == 0
    assert np.isfinite(result.keypoints[0, 5]).all()


def test_non_finite_coordinates_rejected_with_the_reject_policy():
    result = validate_clip(_clip_with_non_finite(), COCO17, nan_policy="reject")
    assert isinstance(result, Reject)
    assert result.reason == "3 non-finite coordinates at frames 4-7"


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((2, 0, 17, 2), "empty clip: 0 frames, 2 persons"), ((0, 5, 17, 2), "empty clip: 5 frames, 0 persons")],
)
def test_empty_clip(shape, expected):
    clip = make_clip(keypoints=np.zeros(shape, np.float32), scores=np.zeros(shape[:3], np.float32))
    assert validate_clip(clip, COCO17).reason.startswith(expected)


def test_keypoints_scores_shape_mismatch():
    result = validate_clip(make_clip(scores=np.ones((2, 7, 17), np.float32)), COCO17)
    assert "keypoints (2, 8, 17, 2) and scores (2, 7, 17) disagree" in result.reason


@pytest.mark.parametrize(
    ("keypoints", "scores", "expected"),
    [
        (np.zeros((8, 17, 2)), np.ones((1, 8, 17)), "keypoints must be (M, T, V, 2), found shape (8, 17, 2)"),
        (
            np.zeros((1, 8, 17, 3)),
            np.ones((1, 8, 17)),
            "keypoints must be (M, T, V, 2), found shape (1, 8, 17, 3)",
        ),
        (np.zeros((1, 8, 17, 2)), np.ones((8, 17)), "scores must be (M, T, V), found shape (8, 17)"),
    ],
)
def test_wrong_ndim(keypoints, scores, expected):
    assert validate_clip(make_clip(keypoints=keypoints, scores=scores), COCO17).reason == expected


def test_joint_count_vs_layout():
    result = validate_clip(make_clip(), PENN13)
    assert result.reason == "17 joints per person, but layout 'penn13' has 13"


def test_missing_label():
    result = validate_clip(make_clip(label_name=None, label=None), COCO17)
    assert result.reason.startswith("missing label")


def test_no_valid_joint_at_all():
    clip = make_clip(scores=np.zeros((2, 8, 17), np.float32))
    assert validate_clip(clip, COCO17).reason.startswith("no valid joint in any frame")
    clip = make_clip(keypoints=np.full((2, 8, 17, 2), np.nan, np.float32))
    assert validate_clip(clip, COCO17).reason.startswith("no valid joint in any frame")


@pytest.mark.parametrize(("img_h", "img_w"), [(0, 640), (480, -1), (480.0, 640), (True, 640), (None, 640)])
def test_image_size_must_be_positive_ints(img_h, img_w):
    result = validate_clip(make_clip(img_h=img_h, img_w=img_w), COCO17)
    assert result.reason.startswith("image size must be positive integers")


# --- unreadable / truncated files, one per format --------------------------------------------------------------


def test_truncated_pyskl_pickle(tmp_path):
    path = truncate(ntu_like_pyskl(tmp_path / "ntu.pkl"))
    reject = single_reject(read_all([path], "pyskl"))
    assert str(path) in reject.reason
    assert "not a readable pickle (truncated or corrupt)" in reject.reason


def test_truncated_ddnet_pickle(tmp_path):
    folder = write_ddnet_folder(tmp_path / "d")
    truncate(folder / "GT_test_1.pkl")
    items = read_all([folder], "jhmdb-ddnet", layout=JHMDB15)
    reject = single_reject(items)
    assert "GT_test_1.pkl" in reject.reason
    assert "truncated or corrupt" in reject.reason
    assert sum(isinstance(i, PoseClip) for i in items) == 3  # the train file still reads


def test_truncated_coco_json(tmp_path):
    path = truncate(write_coco_results(tmp_path / "c.json", moving_poses(1, 5, 17), confidences((1, 5, 17))))
    reject = single_reject(read_all([path], "coco-json"))
    assert reject.clip_id == "c"
    assert "not valid JSON (truncated or corrupt?)" in reject.reason


def test_truncated_openpose_frame(tmp_path):
    folder = write_openpose_clip(tmp_path / "clip7", moving_poses(1, 6, 25), confidences((1, 6, 25)))
    truncate(sorted(folder.iterdir())[3])
    reject = single_reject(read_all([folder], "openpose-json", layout=BODY25))
    assert reject.clip_id == "clip7"
    assert "frame clip7_000000000003_keypoints.json: not valid JSON" in reject.reason


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_h5(tmp_path, damage):
    path = write_h5_clip(tmp_path / "x.h5", moving_poses(1, 50, 17), confidences((1, 50, 17)), {"label": 1})
    if damage == "truncate":
        truncate(path)
    else:
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    reject = single_reject(read_all([path], "h5"))
    assert "not a readable HDF5 file (corrupt or truncated?)" in reject.reason
    assert str(path) in reject.reason


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_npz(tmp_path, damage):
    path = write_npz_clip(tmp_path / "x.npz", moving_poses(1, 50, 17), confidences((1, 50, 17)), label=1)
    if damage == "truncate":
        truncate(path)
    else:
        path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    reject = single_reject(read_all([path], "npz"))
    assert "not a readable .npz file (corrupt or truncated?)" in reject.reason


@pytest.mark.parametrize(("fmt", "layout"), [("penn-action", PENN13), ("utd-mhad", KINECT20)])
def test_corrupt_mat(tmp_path, fmt, layout):
    if fmt == "penn-action":
        path = truncate(write_penn_mat(tmp_path / "0001.mat", n_frames=60))
    else:
        path = truncate(write_utd_mat(tmp_path / "a1_s1_t1_skeleton.mat", utd_skeleton(60)))
    reject = single_reject(read_all([path], fmt, layout=layout))
    assert "not a readable MATLAB .mat file (corrupt or truncated?)" in reject.reason


def test_npz_with_object_array_is_refused_without_pickle(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, keypoints=np.zeros((2, 1, 17, 3)), label_name=np.array(["walk", None], dtype=object))
    reject = single_reject(read_all([path], "npz"))
    assert "without pickle" in reject.reason


# --- malicious pickle ------------------------------------------------------------------------------------------


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = write_malicious_pickle(tmp_path / "evil.pkl", marker)
    reject = single_reject(read_all([path], "pyskl"))
    assert not marker.exists()
    assert "refused to load the global posix.system" in reject.reason
    assert str(path) in reject.reason
    with pytest.raises(ActrecError, match=r"evil\.pkl: refused to load the global posix\.system"):
        load_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize("target", ["builtins eval", "subprocess Popen", "numpy load", "builtins getattr"])
def test_any_global_outside_the_allow_list_is_refused(tmp_path, target):
    module, name = target.split()
    marker = tmp_path / "ran"
    # protocol 0 by hand: c<module>\n<name>\n (S'<arg>'\ntR. = module.name(arg)
    payload = f"c{module}\n{name}\n(S'open({str(marker)!r}, \"w\")'\ntR.".encode()
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    with pytest.raises(ActrecError, match=f"refused to load the global {module}.{name}"):
        load_pickle(path)
    assert not marker.exists()


def test_jhmdb_reader_uses_the_safe_loader_too(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "GT_train_1.pkl"
    write_malicious_pickle(path, marker)
    reject = single_reject(read_all([path], "jhmdb-ddnet", layout=JHMDB15))
    assert "refused" in reject.reason
    assert not marker.exists()


# --- wrong structure -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [{"videos": []}, 42, "text"])
def test_pyskl_wrong_top_level_structure(tmp_path, payload):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=2))
    reject = single_reject(read_all([path], "pyskl"))
    assert "wrong top-level structure: expected a dict with 'annotations'" in reject.reason


def test_pyskl_bad_annotation_rejects_that_clip_only(tmp_path):
    good = pyskl_annotation("good", 1)
    no_keypoint = {k: v for k, v in pyskl_annotation("bad", 1).items() if k != "keypoint"}
    four_d = pyskl_annotation("fourd", 1) | {"keypoint": np.zeros((1, 5, 25, 4), np.float32)}
    short_scores = pyskl_annotation("short", 1) | {"keypoint_score": np.ones((2, 3, 17), np.float32)}
    path = write_pyskl(
        tmp_path / "p.pkl", [good, no_keypoint, four_d, short_scores], {"xsub_train": ["good"]}
    )
    items = read_all([path], "pyskl")
    assert [type(i).__name__ for i in items] == ["PoseClip", "Reject", "Reject", "Reject"]
    assert items[1].clip_id == "bad"
    assert "lacks key(s) keypoint" in items[1].reason
    assert "found shape (1, 5, 25, 4)" in items[2].reason
    assert "(M, T, V, 2) 2D or (M, T, V, 3) 3D coordinates" in items[2].reason
    assert "'keypoint_score' must be (M, T, V) = (2, 12, 17)" in items[3].reason
    assert "found (2, 3, 17)" in items[3].reason


def test_pyskl_unknown_split_protocol(tmp_path):
    path = ntu_like_pyskl(tmp_path / "p.pkl")
    reject = single_reject(read_all([path], "pyskl", split_protocol="xset"))
    assert "split protocol 'xset' names none of the split keys" in reject.reason
    assert "xsub, xview" in reject.reason


def test_pyskl_label_outside_the_classes_file(tmp_path):
    path = ntu_like_pyskl(tmp_path / "p.pkl")  # labels 0, 1, 0, 2
    classes = tmp_path / "classes.txt"
    classes.write_text("a\nb\n")
    reject = single_reject(read_all([path], "pyskl", classes_file=classes))
    assert "label 2 has no name in the classes file (2 names" in reject.reason


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (42, "wrong top-level structure"),
        ({"info": {}}, "wrong top-level structure"),
        ([{"image_id": 1, "keypoints": [1.0, 2.0]}], "not a multiple of 3"),
        (
            [{"image_id": 1, "keypoints": [1, 2, 1] * 17}, {"image_id": 2, "keypoints": [1, 2, 1] * 5}],
            "has 15 keypoint values, the first has 51",
        ),
        ([{"keypoints": [1, 2, 1] * 17}], "detection 0 must be a dict with 'image_id' and 'keypoints'"),
        (
            {"images": [{"id": 1}], "annotations": [{"image_id": 9, "keypoints": [1, 2, 1] * 17}]},
            "refers to image_id 9",
        ),
        (
            [
                {"image_id": 1, "track_id": 3, "keypoints": [1, 2, 1] * 17},
                {"image_id": 1, "keypoints": [1, 2, 1] * 17},
            ],
            "have no 'track_id'",
        ),
    ],
)
def test_coco_wrong_structure(tmp_path, payload, expected):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(payload))
    assert expected in single_reject(read_all([path], "coco-json")).reason


def test_openpose_wrong_structure_and_joint_count(tmp_path):
    folder = write_openpose_clip(tmp_path / "clip", moving_poses(1, 3, 25), confidences((1, 3, 25)))
    reject = single_reject(read_all([folder], "openpose-json", layout=COCO17))
    assert (
        "pose_keypoints_2d has 75 values = 25 joints, but layout 'coco17' expects 17 joints" in reject.reason
    )
    assert reject.reason.endswith("--layout body25 matches")  # ntu25 (Kinect) is no OpenPose layout
    (folder / "clip_000000000001_keypoints.json").write_text(json.dumps({"persons": []}))
    reject = single_reject(read_all([folder], "openpose-json", layout=BODY25))
    assert 'wrong structure, expected {"people": [...]}' in reject.reason


def test_h5_wrong_structure_and_shapes(tmp_path):
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_dataset("poses", data=np.zeros((3, 17, 2)))
    reject = single_reject(read_all([tmp_path / "empty.h5"], "h5"))
    assert "expected a 'keypoints' dataset" in reject.reason
    assert "found poses" in reject.reason
    with h5py.File(tmp_path / "four.h5", "w") as f:
        f.create_dataset("keypoints", data=np.zeros((3, 1, 17, 4)))
    reject = single_reject(read_all([tmp_path / "four.h5"], "h5"))
    assert "'keypoints' must be (T, M, V, 2) or (T, M, V, 3), found shape (3, 1, 17, 4)" in reject.reason
    with h5py.File(tmp_path / "sleap.h5", "w") as f:
        f.create_dataset("tracks", data=np.zeros((1, 3, 13, 9)))
    reject = single_reject(read_all([tmp_path / "sleap.h5"], "h5"))
    assert "SLEAP 'tracks' has shape (1, 3, 13, 9), which is not the order ('track', 'xy'" in reject.reason


def test_npz_wrong_structure(tmp_path):
    np.savez(tmp_path / "a.npz", poses=np.zeros((3, 17, 2)))
    reject = single_reject(read_all([tmp_path / "a.npz"], "npz"))
    assert "no 'keypoints' array; found poses" in reject.reason
    np.savez(tmp_path / "b.npz", keypoints=np.zeros((3, 1, 17, 2)), scores=np.zeros((3, 2, 17)))
    reject = single_reject(read_all([tmp_path / "b.npz"], "npz"))
    assert "'scores' must be numeric (T, M, V) = (3, 1, 17)" in reject.reason
    assert "found shape (3, 2, 17)" in reject.reason


def test_mat_files_of_the_wrong_dataset(tmp_path):
    utd_file = write_utd_mat(tmp_path / "a1_s1_t1_skeleton.mat", utd_skeleton(5))
    reject = single_reject(read_all([utd_file], "penn-action", layout=PENN13))
    assert "not a Penn Action label file: missing field(s) action" in reject.reason
    assert "found d_skel" in reject.reason
    penn_file = write_penn_mat(tmp_path / "a2_s1_t1_skeleton.mat")
    reject = single_reject(read_all([penn_file], "utd-mhad", layout=KINECT20))
    assert "no 'd_skel' variable" in reject.reason
    odd_name = write_utd_mat(tmp_path / "session3.mat", utd_skeleton(5))
    reject = single_reject(read_all([odd_name], "utd-mhad", layout=KINECT20))
    assert "does not follow UTD-MHAD's aA_sS_tT_skeleton.mat" in reject.reason


def test_jhmdb_wrong_structure_and_other_split(tmp_path):
    path = tmp_path / "GT_train_1.pkl"
    path.write_bytes(pickle.dumps({"poses": [], "labels": []}))
    assert (
        "expected {'pose': [...], 'label': [...]}"
        in single_reject(read_all([path], "jhmdb-ddnet", layout=JHMDB15)).reason
    )
    folder = write_ddnet_folder(tmp_path / "d")
    reject = single_reject(
        read_all([folder / "GT_test_2.pkl", folder / "GT_test_1.pkl"], "jhmdb-ddnet", layout=JHMDB15)
    )
    assert "belongs to split 2 but split 1 is selected" in reject.reason
    with pytest.raises(ActrecError, match="split '4' does not exist"):
        read_all([folder], "jhmdb-ddnet", layout=JHMDB15, split_protocol="4")


# --- wholly unusable calls -------------------------------------------------------------------------------------


def test_unusable_calls_raise(tmp_path):
    with pytest.raises(ActrecError, match="none of the input paths exist"):
        read_source([tmp_path / "missing"], "npz", ReadOptions(layout=COCO17))
    with pytest.raises(ActrecError, match="unknown format 'csv'"):
        read_source([tmp_path], "csv", ReadOptions(layout=COCO17))
    with pytest.raises(ActrecError, match="unknown projection"):
        read_source([tmp_path], "utd-mhad", ReadOptions(layout=KINECT20, project="fisheye"))
    with pytest.raises(ActrecError, match="occluded_score must be in"):
        read_source([tmp_path], "penn-action", ReadOptions(layout=PENN13, occluded_score=2))
    with pytest.raises(ActrecError, match="no npz input found"):
        read_all([tmp_path], "npz")  # an existing folder without a single .npz


def test_a_missing_path_beside_good_ones_is_a_reject(tmp_path):
    good = write_npz_clip(tmp_path / "ok.npz", moving_poses(1, 4, 17), confidences((1, 4, 17)), label=0)
    items = read_all([tmp_path / "gone.npz", good], "npz")
    assert isinstance(items[0], Reject)
    assert "no such file or folder" in items[0].reason
    assert isinstance(items[1], PoseClip)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("clip,label\na,walk\n", "missing column(s) clip_id, label_name"),
        ("clip_id,label_name\na,walk\na,run\n", "line 3: clip_id 'a' appears twice"),
        ("clip_id,label_name,label\na,walk,two\n", "line 2: label must be an integer, found 'two'"),
        ("clip_id,label_name,img_h\na,walk,0\n", "line 2: img_h must be positive"),
    ],
)
def test_bad_manifest_is_a_usage_error(tmp_path, content, expected):
    manifest = tmp_path / "labels.csv"
    manifest.write_text(content)
    write_coco_results(tmp_path / "a.json", moving_poses(1, 4, 17), confidences((1, 4, 17)))
    with pytest.raises(ActrecError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        read_source([tmp_path / "a.json"], "coco-json", ReadOptions(layout=COCO17, labels_csv=manifest))


def test_bad_classes_file_is_a_usage_error(tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_text("a\n\nc\n")
    path = ntu_like_pyskl(tmp_path / "p.pkl")
    with pytest.raises(ActrecError, match="line 2 is empty"):
        read_source([path], "pyskl", ReadOptions(layout=COCO17, classes_file=classes))


# --- a mixed batch ---------------------------------------------------------------------------------------------


def test_mixed_batch_kept_plus_rejected_equals_read(tmp_path):
    kp, sc = moving_poses(1, 10, 17), confidences((1, 10, 17))
    for i in range(3):
        write_npz_clip(tmp_path / f"good{i}.npz", kp, sc, label_name="walk", img_h=480, img_w=640)
    truncate(write_npz_clip(tmp_path / "corrupt.npz", kp, sc, label_name="walk"))
    write_npz_clip(
        tmp_path / "wrong_joints.npz", moving_poses(1, 10, 13), confidences((1, 10, 13)), label_name="walk"
    )
    inf_kp = kp.copy()
    inf_kp[0, 2, 5] = np.inf
    write_npz_clip(tmp_path / "inf.npz", inf_kp, sc, label_name="walk")
    write_npz_clip(tmp_path / "unlabelled.npz", kp, sc)
    manifest = write_manifest(tmp_path / "labels.csv", [{"clip_id": "good2", "label_name": "run"}])

    read = kept = rejected = 0
    reasons = {}
    for item in read_source([tmp_path], "npz", ReadOptions(layout=COCO17, labels_csv=manifest)):
        read += 1
        result = validate_clip(item, COCO17, nan_policy="reject") if isinstance(item, PoseClip) else item
        if isinstance(result, PoseClip):
            kept += 1
        else:
            rejected += 1
            reasons[result.clip_id] = result.reason
    assert (read, kept, rejected) == (7, 3, 4)
    assert kept + rejected == read
    assert set(reasons) == {"corrupt", "wrong_joints", "inf", "unlabelled"}
    assert reasons["wrong_joints"] == "13 joints per person, but layout 'coco17' has 17"
    assert reasons["inf"] == "1 non-finite coordinates at frame 2"
    assert reasons["unlabelled"].startswith("missing label")
