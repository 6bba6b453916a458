"""Every reader on realistic files written by `fixtures_pose`, and on the three real datasets in ../shared."""

from __future__ import annotations

import collections
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_pose import (
    confidences,
    moving_poses,
    ntu_like_pyskl,
    pyskl_annotation,
    utd_skeleton,
    write_coco_dataset,
    write_coco_results,
    write_ddnet_folder,
    write_h5_clip,
    write_h5_many,
    write_manifest,
    write_npz_clip,
    write_openpose_clip,
    write_penn_mat,
    write_pyskl,
    write_sleap_analysis,
    write_utd_mat,
)

from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject
from etl.pose.clip_checks import validate_clip
from etl.pose.skeleton import BODY25, COCO17, JHMDB15, KINECT20, OPENPOSE18, PENN13
from etl.readers import FORMATS, ReadOptions, dataset_classes, detect_format, read_source
from etl.readers import utd_mhad as utd


def read_all(paths, fmt, layout=COCO17, **options) -> list[PoseClip | Reject]:
    return list(read_source([Path(p) for p in paths], fmt, ReadOptions(layout=layout, **options)))


def clips_only(items) -> list[PoseClip]:
    rejects = [item for item in items if isinstance(item, Reject)]
    assert not rejects, rejects
    return items


def assert_poseclip_convention(clip: PoseClip) -> None:
    assert clip.keypoints.dtype == np.float32
    assert clip.scores.dtype == np.float32
    assert clip.keypoints.ndim == 4
    assert clip.keypoints.shape[-1] == 2
    assert clip.scores.shape == clip.keypoints.shape[:3]
    missing = np.isnan(clip.keypoints).any(-1)
    assert (clip.scores[missing] == 0).all()
    assert clip.scores.min() >= 0
    assert isinstance(clip.img_h, int)
    assert isinstance(clip.img_w, int)


# --- registry --------------------------------------------------------------------------------------------------


def test_formats_are_the_documented_ones():
    assert FORMATS == (
        "pyskl",
        "coco-json",
        "openpose-json",
        "h5",
        "npz",
        "penn-action",
        "jhmdb-ddnet",
        "utd-mhad",
        "ntu-skeleton",
        "stgcn-npy",
        "kinetics-skeleton",
        "mmpose-json",
        "yolo-pose",
        "mediapipe",
        "dlc",
        "sleap-csv",
    )


def test_every_format_registers_itself_once():
    from etl.readers.format_options import FORMAT_OPTIONS
    from etl.readers.formats import SNIFF_ORDER, SPECS

    assert sorted(spec.name for spec in SNIFF_ORDER) == sorted(FORMATS)  # one SPEC per --format name
    for spec in SPECS.values():
        assert all(FORMAT_OPTIONS[option.name] is option for option in spec.options), spec.name


def test_format_options_are_keywords_kept_apart_from_the_shared_fields():
    options = ReadOptions(COCO17, project="ortho", max_frames=10)
    assert options.format_options == {"project": "ortho"}
    assert options.project == "ortho"  # given
    assert options.occluded_score == 0.5  # not given: the declared default
    with pytest.raises(ActrecError, match="unknown read option"):
        ReadOptions(COCO17, projection="ortho")
    import dataclasses

    assert dataclasses.replace(options, max_frames=5).format_options == {"project": "ortho"}


def test_a_format_reads_only_the_options_it_declares(tmp_path):
    from etl.readers import format_spec

    assert [o.name for o in format_spec("utd-mhad").options] == ["project"]
    assert format_spec("coco-json").option_values({"project": "ortho"}) == {}
    with pytest.raises(ActrecError, match="jhmdb-ddnet split '4' does not exist"):
        format_spec("jhmdb-ddnet").option_values({"split_protocol": "4"})


def test_dataset_classes():
    penn = dataset_classes("penn-action")
    assert len(penn) == 15
    assert penn == sorted(penn)
    assert penn[0] == "baseball_pitch"
    utd_classes = dataset_classes("utd-mhad")
    assert len(utd_classes) == 27
    assert utd_classes[0] == "swipe_left"
    assert utd_classes[-1] == "squat"
    jhmdb = dataset_classes("jhmdb-ddnet")
    assert len(jhmdb) == 14
    assert jhmdb == sorted(jhmdb)
    for fmt in ("pyskl", "coco-json", "openpose-json", "h5", "npz"):
        assert dataset_classes(fmt) is None
    with pytest.raises(ActrecError, match="unknown format"):
        dataset_classes("csv")


def test_read_source_is_a_lazy_stream(tmp_path):
    for i in range(3):
        write_penn_mat(tmp_path / f"{i + 1:04d}.mat", seed=i)
    stream = read_source([tmp_path], "penn-action", ReadOptions(layout=PENN13))
    assert inspect.isgenerator(stream)
    assert next(stream).clip_id == "0001"


# --- pyskl -----------------------------------------------------------------------------------------------------


def test_pyskl_splits_labels_and_arrays(tmp_path):
    path = ntu_like_pyskl(tmp_path / "ntu60_2d.pkl")
    clips = clips_only(read_all([path], "pyskl"))
    assert [c.clip_id for c in clips] == [
        "S001C001P001R001A001",
        "S001C002P002R001A002",
        "S002C001P003R002A001",
        "S002C003P001R002A003",
    ]
    first = clips[0]
    assert_poseclip_convention(first)
    assert first.keypoints.shape == (2, 12, 17, 2)
    assert (first.img_h, first.img_w) == (1080, 1920)
    assert first.source == f"{path}#S001C001P001R001A001"
    assert first.source_format == "pyskl"
    assert (first.label, first.label_name) == (0, "class_0")
    # default protocol: the prefix of the first split key ("xsub"); val -> "test"
    assert [c.split for c in clips] == ["train", "test", "train", "test"]
    assert first.meta == {
        "split_xsub_train": True,
        "split_xsub_val": False,
        "split_xview_train": False,
        "split_xview_val": True,
    }
    xview = clips_only(read_all([path], "pyskl", split_protocol="xview"))
    assert [c.split for c in xview] == ["test", "train", "train", "train"]


def test_pyskl_class_names_from_classes_file(tmp_path):
    path = ntu_like_pyskl(tmp_path / "a.pkl")
    classes = tmp_path / "classes.txt"
    classes.write_text("drink water\neat meal\nbrush teeth\n\n")
    clips = clips_only(read_all([path], "pyskl", classes_file=classes))
    assert [c.label_name for c in clips] == ["drink water", "eat meal", "drink water", "brush teeth"]


def test_pyskl_without_scores_uses_finite_non_zero_coordinates(tmp_path):
    annotation = pyskl_annotation("clip_a", 3, n_persons=2, with_scores=False)
    annotation["keypoint"][1] = 0  # an absent second person, padded with zeros as PYSKL does
    path = write_pyskl(tmp_path / "bare.pkl", [annotation], bare_list=True)
    (clip,) = clips_only(read_all([path], "pyskl"))
    assert_poseclip_convention(clip)
    assert (clip.scores[0] == 1.0).all()
    assert (clip.scores[1] == 0).all()
    assert np.isnan(clip.keypoints[1]).all()
    assert clip.split is None
    assert clip.meta == {}


def test_pyskl_pickle_protocols_all_load(tmp_path):
    annotations = [pyskl_annotation("p", 1)]
    expected = annotations[0]["keypoint"].astype(np.float32)
    for protocol in (2, 4, 5):
        path = write_pyskl(tmp_path / f"p{protocol}.pkl", annotations, {"train": ["p"]}, protocol=protocol)
        (clip,) = clips_only(read_all([path], "pyskl"))
        np.testing.assert_array_equal(clip.keypoints, expected)
        assert clip.split == "train"  # a key without '_' has the empty protocol prefix


# --- coco-json -------------------------------------------------------------------------------------------------


def test_coco_results_by_score_rank(tmp_path):
    keypoints = moving_poses(2, 6, 17, seed=3)
    scores = confidences((2, 6, 17))
    scores[1] *= 0.5  # person 1 is the less confident one in every frame
    path = write_coco_results(tmp_path / "clip_01.json", keypoints[::-1], scores[::-1], skip_frames=(2,))
    (clip,) = clips_only(read_all([path], "coco-json"))
    assert_poseclip_convention(clip)
    # consecutive image ids (1000..1005) are frame numbers: the missed frame 2 is kept, with every joint missing
    assert clip.clip_id == "clip_01"
    assert clip.keypoints.shape == (2, 6, 17, 2)
    assert (clip.scores[:, 2] == 0).all()
    assert np.isnan(clip.keypoints[:, 2]).all()
    np.testing.assert_allclose(clip.keypoints[0, 0], keypoints[0, 0], atol=1e-3)
    np.testing.assert_allclose(clip.scores[1, 4], scores[1, 4], atol=1e-3)


def test_coco_results_with_image_numbers_keep_only_detected_images(tmp_path):
    keypoints = moving_poses(1, 4, 17, seed=3)
    path = write_coco_results(tmp_path / "c.json", keypoints, confidences((1, 4, 17)), first_image_id=397133)
    data = json.loads(path.read_text())
    for i, det in enumerate(data):  # COCO-style image numbers, far apart
        det["image_id"] = 397133 + 1000 * i
    path.write_text(json.dumps(data))
    (clip,) = clips_only(read_all([path], "coco-json"))
    assert clip.keypoints.shape == (1, 4, 17, 2)
    # no images: size = rounded-up extent of the keypoints
    assert clip.img_w == int(np.floor(np.nanmax(clip.keypoints[..., 0]))) + 1
    assert clip.label_name is None
    assert clip.label is None


def test_coco_results_by_track_id(tmp_path):
    keypoints = moving_poses(2, 4, 17, seed=4)
    scores = confidences((2, 4, 17))
    path = write_coco_results(tmp_path / "t.json", keypoints, scores, track_ids=True)
    (clip,) = clips_only(read_all([path], "coco-json"))
    np.testing.assert_allclose(clip.keypoints, keypoints, atol=1e-3)


def test_coco_dataset_frames_keep_their_count_and_visibility_flags(tmp_path):
    keypoints = moving_poses(1, 5, 17, seed=5)
    visibility = np.full((1, 5, 17), 2.0, np.float32)
    visibility[0, 1, 3] = 1  # occluded
    visibility[0, 2, 4] = 0  # unlabelled
    path = write_coco_dataset(tmp_path / "gt.json", keypoints, visibility, img_h=480, img_w=640)
    data = json.loads(path.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 53]  # frame 3: nobody detected
    path.write_text(json.dumps(data))
    (clip,) = clips_only(read_all([path], "coco-json"))
    assert clip.keypoints.shape == (1, 5, 17, 2)
    assert (clip.img_h, clip.img_w) == (480, 640)
    assert np.isnan(clip.keypoints[0, 3]).all()
    assert (clip.scores[0, 3] == 0).all()
    np.testing.assert_allclose(clip.keypoints[0, 0], keypoints[0, 0], atol=1e-4)  # ordered by frame_index
    assert clip.scores[0, 1, 3] == 0.5
    assert clip.scores[0, 0, 3] == 1.0
    assert clip.scores[0, 2, 4] == 0
    assert np.isnan(clip.keypoints[0, 2, 4]).all()


def test_coco_labels_from_manifest(tmp_path):
    keypoints, scores = moving_poses(1, 4, 17), confidences((1, 4, 17))
    for name in ("cam1 walk", "cam2_run", "unlisted"):
        write_coco_results(tmp_path / f"{name}.json", keypoints, scores)
    manifest = write_manifest(
        tmp_path / "labels.csv",
        [
            {
                "clip_id": "cam1 walk",
                "label_name": "walk",
                "split": "train",
                "img_h": 720,
                "img_w": 1280,
                "camera": "1",
            },
            {"clip_id": "cam2_run", "label_name": "run", "label": 4, "split": "test", "camera": "2"},
        ],
    )
    clips = clips_only(read_all([tmp_path], "coco-json", labels_csv=manifest))
    by_id = {c.clip_id: c for c in clips}
    assert set(by_id) == {"cam1_walk", "cam2_run", "unlisted"}  # ids made safe, matched on both sides
    walk, run = by_id["cam1_walk"], by_id["cam2_run"]
    assert (walk.label_name, walk.split, walk.img_h, walk.img_w, walk.meta) == (
        "walk",
        "train",
        720,
        1280,
        {"camera": "1"},
    )
    assert (run.label_name, run.label, run.split) == ("run", 4, "test")
    assert by_id["unlisted"].label_name is None  # validation rejects it as "missing label"


# --- openpose-json ---------------------------------------------------------------------------------------------


def test_openpose_clip_folder_frames_in_numeric_order(tmp_path):
    keypoints = moving_poses(1, 12, 25, seed=6)
    scores = confidences((1, 12, 25))
    keypoints[0, 3, 7] = np.nan  # written as x = y = c = 0
    folder = write_openpose_clip(tmp_path / "jump_003", keypoints, scores, padded_names=False)
    (folder / "jump_003_5_keypoints.json").write_text(json.dumps({"version": 1.3, "people": []}))
    (clip,) = clips_only(read_all([folder], "openpose-json", layout=BODY25))
    assert clip.clip_id == "jump_003"
    assert clip.keypoints.shape == (1, 12, 25, 2)
    np.testing.assert_allclose(clip.keypoints[0, 10], keypoints[0, 10], atol=1e-3)  # frame 10 after frame 9
    assert np.isnan(clip.keypoints[0, 3, 7]).all()
    assert clip.scores[0, 3, 7] == 0
    assert np.isnan(clip.keypoints[0, 5]).all()
    assert (clip.scores[0, 5] == 0).all()  # nobody in frame 5
    assert_poseclip_convention(clip)


def test_openpose_collection_folder_and_person_ids(tmp_path):
    keypoints = moving_poses(2, 5, 18, seed=7)
    scores = confidences((2, 5, 18))
    write_openpose_clip(tmp_path / "all" / "b_clip", keypoints, scores, person_ids=True)
    write_openpose_clip(tmp_path / "all" / "a_clip", keypoints[:1], scores[:1])
    clips = clips_only(read_all([tmp_path / "all"], "openpose-json", layout=OPENPOSE18))
    assert [c.clip_id for c in clips] == ["a_clip", "b_clip"]
    np.testing.assert_allclose(clips[1].keypoints, keypoints, atol=1e-3)


# --- h5 / npz --------------------------------------------------------------------------------------------------


def test_h5_single_clip_with_score_channel(tmp_path):
    keypoints, scores = moving_poses(2, 8, 17), confidences((2, 8, 17))
    attrs = {
        "label_name": "wave",
        "label": 3,
        "split": "train",
        "img_h": 480,
        "img_w": 640,
        "fps": 30.0,
        "camera": "C2",
    }
    path = write_h5_clip(tmp_path / "wave_01.h5", keypoints, scores, attrs)
    (clip,) = clips_only(read_all([path], "h5"))
    assert clip.clip_id == "wave_01"
    assert clip.keypoints.shape == (2, 8, 17, 2)  # (T, M, ...) -> (M, T, ...)
    np.testing.assert_allclose(clip.keypoints, keypoints, atol=1e-4)
    np.testing.assert_allclose(clip.scores, scores, atol=1e-6)
    assert (clip.label_name, clip.label, clip.split, clip.img_h, clip.img_w) == ("wave", 3, "train", 480, 640)
    assert clip.meta == {"fps": 30.0, "camera": "C2"}


def test_h5_many_clips_under_clips_group(tmp_path):
    clips_in = {
        f"clip{i}": (moving_poses(1, 5 + i, 17, seed=i), confidences((1, 5 + i, 17)), {"label": i})
        for i in (10, 2)
    }
    path = write_h5_many(tmp_path / "batch.hdf5", clips_in, {"fps": 25, "img_h": 720, "img_w": 1280})
    clips = clips_only(read_all([path], "h5"))
    assert [c.clip_id for c in clips] == ["clip2", "clip10"]  # natural order
    assert [c.source for c in clips] == [f"{path}#clip2", f"{path}#clip10"]
    assert clips[0].label_name == "class_2"
    assert clips[0].img_h == 720
    assert clips[0].meta == {"fps": 25}


def test_h5_sleap_analysis_is_transposed_back(tmp_path):
    keypoints = moving_poses(2, 9, 13, seed=8)
    scores = confidences((2, 9, 13))
    keypoints[1, 4:6] = np.nan  # track 1 lost for two frames
    scores[1, 4:6] = np.nan
    path = write_sleap_analysis(
        tmp_path / "mouse_day1.analysis.h5", keypoints, scores, [f"n{i}" for i in range(13)]
    )
    manifest = write_manifest(
        tmp_path / "m.csv", [{"clip_id": "mouse_day1", "label_name": "groom", "img_h": 1024, "img_w": 1024}]
    )
    (clip,) = clips_only(read_all([path], "h5", labels_csv=manifest))
    assert clip.clip_id == "mouse_day1"
    assert clip.keypoints.shape == (2, 9, 13, 2)
    np.testing.assert_allclose(clip.keypoints, keypoints, atol=1e-5)
    assert (clip.scores[1, 4:6] == 0).all()
    np.testing.assert_allclose(clip.scores[0], scores[0], atol=1e-6)
    assert (clip.label_name, clip.img_h) == ("groom", 1024)


def test_npz_clip(tmp_path):
    keypoints, scores = moving_poses(1, 7, 17), confidences((1, 7, 17))
    path = write_npz_clip(
        tmp_path / "k.npz",
        keypoints,
        scores,
        label_name="jump",
        split="test",
        img_h=360,
        img_w=480,
        fps=29.97,
        subject=4,
    )
    (clip,) = clips_only(read_all([path], "npz"))
    np.testing.assert_allclose(clip.keypoints, keypoints, atol=1e-5)
    assert (clip.label_name, clip.split, clip.img_h, clip.img_w) == ("jump", "test", 360, 480)
    assert clip.meta == {"fps": pytest.approx(29.97), "subject": 4}


# --- dataset formats (synthetic files in the datasets' own layout) ---------------------------------------------


def test_penn_action_mat(tmp_path):
    path = write_penn_mat(
        tmp_path / "0042.mat", dtype=np.uint16, action="bench_press", pose="left", train=-1, bbox_rows=19
    )
    (clip,) = clips_only(read_all([path], "penn-action", layout=PENN13, occluded_score=0.3))
    assert (clip.clip_id, clip.label_name, clip.label, clip.split) == ("0042", "bench_press", 2, "test")
    assert (clip.img_h, clip.img_w, clip.meta) == (270, 480, {"viewpoint": "left"})
    assert np.isin(clip.scores, np.float32([0.3, 1.0])).all()
    assert (clip.scores == np.float32(0.3)).any()
    assert_poseclip_convention(clip)


def test_penn_invisible_zero_joints_are_missing(tmp_path):
    import scipy.io

    path = write_penn_mat(tmp_path / "0007.mat")
    mat = scipy.io.loadmat(path)
    mat["x"][2, 5] = mat["y"][2, 5] = 0
    mat["visibility"][2, 5] = 0
    scipy.io.savemat(path, {k: v for k, v in mat.items() if not k.startswith("__")})
    (clip,) = clips_only(read_all([path], "penn-action", layout=PENN13))
    assert np.isnan(clip.keypoints[0, 2, 5]).all()
    assert clip.scores[0, 2, 5] == 0


@pytest.mark.parametrize("method", utd.PROJECTIONS)
def test_utd_mhad_projection(tmp_path, method):
    skeleton = utd_skeleton(30)
    path = write_utd_mat(tmp_path / "a14_s3_t2_skeleton.mat", skeleton)
    (clip,) = clips_only(read_all([path], "utd-mhad", layout=KINECT20, project=method))
    assert (clip.clip_id, clip.label_name, clip.label, clip.split) == (
        "a14_s3_t2",
        "baseball_swing",
        13,
        "train",
    )
    assert clip.meta == {"subject": 3, "trial": 2}
    assert (clip.img_h, clip.img_w) == (480, 640)
    x, y, z = skeleton[0, :, 0]  # head, frame 0
    if method == "pinhole":
        expected = (utd.CX + utd.FX * x / z, utd.CY - utd.FY * y / z)
    else:
        expected = (utd.CX + utd.FX / utd.Z_REF * x, utd.CY - utd.FX / utd.Z_REF * y)
    np.testing.assert_allclose(clip.keypoints[0, 0, 0], expected, rtol=1e-5)
    assert clip.keypoints[0, 0, 0, 1] < clip.keypoints[0, 0, 19, 1]  # head above foot: y flipped


def test_jhmdb_ddnet_reads_one_split_and_fits_the_canvas(tmp_path):
    folder = write_ddnet_folder(tmp_path / "jhmdb")
    clips = clips_only(read_all([folder], "jhmdb-ddnet", layout=JHMDB15))
    assert [c.clip_id for c in clips] == [
        "s1_test_0000",
        "s1_test_0001",
        "s1_train_0000",
        "s1_train_0001",
        "s1_train_0002",
    ]
    for clip in clips:
        assert (clip.img_h, clip.img_w) == (240, 320)
        assert (clip.scores == 1).all()
        kp = clip.keypoints[0]
        assert kp[..., 0].min() >= 0.1 * 320 - 1e-3
        assert kp[..., 0].max() <= 0.9 * 320 + 1e-3
        assert kp[..., 1].min() >= 0.1 * 240 - 1e-3
        assert kp[..., 1].max() <= 0.9 * 240 + 1e-3
    assert clips[0].label_name == "clap"
    assert clips[0].label == 1
    assert clips[0].split == "test"
    split2 = clips_only(read_all([folder], "jhmdb-ddnet", layout=JHMDB15, split_protocol="2"))
    assert split2[0].clip_id == "s2_test_0000"
    assert split2[0].meta == {"jhmdb_split": 2}


def test_jhmdb_canvas_fit_keeps_the_shape():
    from etl.readers.jhmdb_ddnet import fit_to_canvas

    pose = np.array([[[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]]])  # (T=1, V=3, 2): a 1 x 2 box
    fitted = fit_to_canvas(pose)
    width, height = np.ptp(fitted[0, :, 0]), np.ptp(fitted[0, :, 1])
    assert np.isclose(height, 240 * 0.8)
    assert np.isclose(2 * width, height)  # the tall box fills the height
    np.testing.assert_allclose(fitted[0].min(0) + fitted[0].max(0), [320, 240])  # centred


# --- detect_format ---------------------------------------------------------------------------------------------


def test_detect_format_each_kind(tmp_path):
    kp, sc = moving_poses(1, 4, 17), confidences((1, 4, 17))
    cases = {
        "pyskl": ntu_like_pyskl(tmp_path / "ntu.pkl"),
        "jhmdb-ddnet": write_ddnet_folder(tmp_path / "ddnet"),
        "coco-json": write_coco_results(tmp_path / "c.json", kp, sc),
        "openpose-json": write_openpose_clip(tmp_path / "op" / "clip", kp, sc).parent,
        "h5": write_h5_clip(tmp_path / "x.h5", kp, sc, {}),
        "npz": write_npz_clip(tmp_path / "x.npz", kp, sc),
        "penn-action": write_penn_mat(tmp_path / "0001.mat"),
        "utd-mhad": write_utd_mat(tmp_path / "a1_s1_t1_skeleton.mat", utd_skeleton(5)),
    }
    for fmt, path in cases.items():
        assert detect_format([path]) == fmt, path
    renamed = tmp_path / "poses.pkl"  # a DD-Net pickle under another name: told by its content
    renamed.write_bytes((tmp_path / "ddnet" / "GT_train_1.pkl").read_bytes())
    assert detect_format([renamed]) == "jhmdb-ddnet"
    coco_dict = write_coco_dataset(tmp_path / "gt.json", kp, np.full((1, 4, 17), 2.0), img_h=480, img_w=640)
    assert detect_format([coco_dict]) == "coco-json"


def test_detect_format_refuses_what_it_cannot_tell(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ActrecError, match="cannot tell the format"):
        detect_format([tmp_path / "notes.txt"])
    with pytest.raises(ActrecError, match="none of the input paths exist"):
        detect_format([tmp_path / "nope.pkl"])
    kp, sc = moving_poses(1, 4, 17), confidences((1, 4, 17))
    mixed = [write_h5_clip(tmp_path / "x.h5", kp, sc, {}), write_npz_clip(tmp_path / "y.npz", kp, sc)]
    with pytest.raises(ActrecError, match="different formats"):
        detect_format(mixed)


def test_read_source_auto_format(tmp_path):
    write_utd_mat(tmp_path / "a2_s2_t1_skeleton.mat", utd_skeleton(5))
    (clip,) = clips_only(read_all([tmp_path], "auto", layout=KINECT20))
    assert clip.source_format == "utd-mhad"
    assert clip.split == "test"


# --- the real datasets -----------------------------------------------------------------------------------------


def _read_validated(paths, fmt, layout, **options):
    kept, rejected = [], []
    for item in read_source(paths, fmt, ReadOptions(layout=layout, **options)):
        result = validate_clip(item, layout) if isinstance(item, PoseClip) else item
        (kept if isinstance(result, PoseClip) else rejected).append(result)
    return kept, rejected


@pytest.mark.shared
def test_real_penn_action(shared_dir):
    kept, rejected = _read_validated([shared_dir / "data" / "penn_action" / "labels"], "penn-action", PENN13)
    assert not rejected
    assert len(kept) == 2326
    assert len({c.label_name for c in kept}) == 15
    assert {c.label_name for c in kept} == set(dataset_classes("penn-action"))
    assert collections.Counter(c.split for c in kept) == {"train": 1258, "test": 1068}
    assert collections.Counter(c.meta["viewpoint"] for c in kept) == {
        "front": 612,
        "back": 604,
        "right": 597,
        "left": 513,
    }
    assert sum(c.n_frames for c in kept) == 163_841
    assert all(c.label == dataset_classes("penn-action").index(c.label_name) for c in kept)


@pytest.mark.shared
def test_real_jhmdb_ddnet(shared_dir):
    kept, rejected = _read_validated([shared_dir / "data" / "jhmdb_ddnet14"], "jhmdb-ddnet", JHMDB15)
    assert not rejected
    assert collections.Counter(c.split for c in kept) == {"train": 433, "test": 176}
    assert len({c.label_name for c in kept}) == 14
    assert all(c.label is not None for c in kept)
    assert len({c.clip_id for c in kept}) == 609
    per_class = collections.Counter((c.label_name, c.split) for c in kept)
    assert (per_class["catch", "train"], per_class["catch", "test"]) == (34, 14)


@pytest.mark.shared
def test_real_utd_mhad(shared_dir):
    kept, rejected = _read_validated([shared_dir / "data" / "utd_mhad_skeleton"], "utd-mhad", KINECT20)
    assert not rejected
    assert len(kept) == 861
    assert len({c.label_name for c in kept}) == 27
    assert collections.Counter(c.split for c in kept) == {"train": 431, "test": 430}
    assert {c.clip_id for c in kept}.isdisjoint({"a8_s1_t4", "a23_s6_t4", "a27_s8_t4"})


# --- the --labels manifest, applied once in read_source for every format ----------------------------------------


def _one_clip_per_format(tmp_path) -> dict[str, Path]:
    kp, sc = moving_poses(1, 4, 17), confidences((1, 4, 17))
    return {
        "jhmdb-ddnet": write_ddnet_folder(tmp_path / "ddnet"),
        "pyskl": ntu_like_pyskl(tmp_path / "ntu.pkl"),
        "coco-json": write_coco_results(tmp_path / "c.json", kp, sc),
        "openpose-json": write_openpose_clip(tmp_path / "op" / "clip", kp, sc).parent,
        "h5": write_h5_clip(tmp_path / "x.h5", kp, sc, {}),
        "npz": write_npz_clip(tmp_path / "x.npz", kp, sc),
        "penn-action": write_penn_mat(tmp_path / "0001.mat"),
        "utd-mhad": write_utd_mat(tmp_path / "a1_s1_t1_skeleton.mat", utd_skeleton(5)),
    }


@pytest.mark.parametrize(
    "fmt", ["jhmdb-ddnet", "pyskl", "coco-json", "openpose-json", "h5", "npz", "penn-action", "utd-mhad"]
)
def test_labels_manifest_is_applied_for_every_format(tmp_path, fmt):
    # jhmdb-ddnet once ignored the manifest silently: each reader applied it itself and that one forgot to
    path = _one_clip_per_format(tmp_path)[fmt]
    plain = clips_only(read_all([path], fmt))
    target = plain[0]
    manifest = write_manifest(
        tmp_path / "labels.csv",
        [{"clip_id": target.clip_id, "label_name": "from_manifest", "split": "val", "camera": "7"}],
    )
    labelled = clips_only(read_all([path], fmt, labels_csv=manifest))
    assert [c.clip_id for c in labelled] == [c.clip_id for c in plain]
    by_id = {c.clip_id: c for c in labelled}
    got = by_id[target.clip_id]
    assert (got.label_name, got.split, got.meta.get("camera")) == ("from_manifest", "val", "7")
    assert target.label_name != "from_manifest"
    assert target.split != "val"
    for clip in plain[1:]:  # clips the manifest does not list keep what the file says
        assert (by_id[clip.clip_id].label_name, by_id[clip.clip_id].split) == (clip.label_name, clip.split)


def test_missing_input_paths(tmp_path):
    """One check (readers.common.existing_inputs) behind the three callers: ingest wants every path, read_source
    and detect_format at least one (read_source rejects the others)."""
    from etl.commands.ingest import ingest

    present = write_coco_results(tmp_path / "c.json", moving_poses(1, 4, 17), confidences((1, 4, 17)))
    missing = tmp_path / "gone.json"
    with pytest.raises(ActrecError, match=f"input not found: {missing}$"):
        ingest(
            [present, missing], out=tmp_path / "kp.zarr", fmt="coco-json", options=ReadOptions(layout=COCO17)
        )
    assert not (tmp_path / "kp.zarr").exists()
    items = read_all([present, missing], "coco-json")
    assert [type(i) for i in items] == [Reject, PoseClip]
    assert "no such file or folder" in items[0].reason
    assert detect_format([present, missing]) == "coco-json"
    for check in (lambda: read_all([missing], "coco-json"), lambda: detect_format([missing])):
        with pytest.raises(ActrecError, match="none of the input paths exist"):
            check()


def test_person_ranking_and_found_structure_helpers():
    from etl.readers.common import describe_found, score_ranks

    assert score_ranks([0.2, 0.9, 0.5, 0.9]) == [3, 0, 2, 1]  # most confident first; a tie keeps file order
    assert score_ranks([]) == []
    assert describe_found({"a": 1, "b": 2}) == "a dict with keys a, b"
    assert (
        describe_found(dict.fromkeys("abcdefghij"), max_keys=8) == "a dict with keys a, b, c, d, e, f, g, h"
    )
    assert describe_found({}) == "a dict with keys none"
    assert describe_found([1]) == "list"
