"""Joint orders read by name (COCO categories, SLEAP axis orders, OpenPose gaps) and `--to-layout` mapping."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures_pose import confidences, moving_poses, write_manifest, write_openpose_clip, write_sleap_analysis

from etl.commands.ingest import ingest
from etl.common.errors import ActrecError
from etl.pose.clip import PoseClip, Reject
from etl.pose.layout_map import canonical_joint_name, layout_mapping
from etl.pose.skeleton import BODY25, COCO17, H36M17, HALPE26, LAYOUTS, OPENPOSE18, POSETRACK17, get_layout
from etl.readers import ReadOptions, read_source
from etl.stores.keypoint_store import KeypointStore


def read_all(paths, fmt, layout=COCO17, **options) -> list[PoseClip | Reject]:
    return list(read_source([Path(p) for p in paths], fmt, ReadOptions(layout=layout, **options)))


def _coco_dict(path: Path, keypoints: np.ndarray, names: list[str]) -> Path:
    """A COCO-style dict with one person per frame, joints in the order `names` (keypoints (1, T, V, 2))."""
    n_frames, _n_joints = keypoints.shape[1:3]
    images = [
        {"id": t + 1, "file_name": f"{t:06d}.jpg", "width": 640, "height": 480} for t in range(n_frames)
    ]
    annotations = [
        {
            "id": t + 1,
            "image_id": t + 1,
            "category_id": 1,
            "keypoints": [v for x, y in keypoints[0, t].tolist() for v in (round(x, 3), round(y, 3), 2)],
        }
        for t in range(n_frames)
    ]
    categories = [{"id": 1, "name": "person", "keypoints": names}]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


# --- the new layouts -------------------------------------------------------------------------------------------


def test_new_layouts_have_their_published_sizes_and_names():
    sizes = {"halpe26": 26, "crowdpose14": 14, "mpii16": 16, "h36m17": 17, "coco_wholebody133": 133,
             "posetrack17": 17}  # fmt: skip
    for name, n in sizes.items():
        assert get_layout(name).n_joints == n
    wholebody = get_layout("coco_wholebody133")
    assert wholebody.joints[:17] == COCO17.joints
    assert wholebody.joints[91] == "left_hand_root"
    assert wholebody.joints[132] == "right_pinky_finger4"
    assert HALPE26.joints[17:20] == ("head", "neck", "mid_hip")
    assert POSETRACK17.joints[1:3] == ("head_bottom", "head_top")
    assert get_layout("mpii16").joints[0] == "right_ankle"
    assert H36M17.joints[0] == "pelvis"
    # each flip swaps the named sides: left_wrist of wholebody's left hand becomes the right hand
    assert wholebody.joint_flip[91] == 112
    assert wholebody.joint_flip[23 + 8] == 23 + 8  # chin stays


def test_canonical_joint_names():
    assert canonical_joint_name("Left Eye") == canonical_joint_name("l_eye") == "left_eye"
    assert canonical_joint_name("r-ankle") == "right_ankle"
    assert canonical_joint_name("root") == canonical_joint_name("hip") == canonical_joint_name("mid_hip")


@pytest.mark.parametrize("source", ["body25", "halpe26", "coco_wholebody133", "openpose18"])
def test_estimator_layouts_map_onto_coco17_by_name(source):
    lay = get_layout(source)
    mapping = layout_mapping(lay, COCO17)
    assert [lay.joints[i] for i in mapping] == list(COCO17.joints)


def test_mapping_refuses_with_the_missing_joints():
    with pytest.raises(ActrecError, match="openpose18: coco17 has no joint named neck"):
        layout_mapping(COCO17, OPENPOSE18)
    with pytest.raises(ActrecError, match="left_eye, right_eye"):
        layout_mapping(POSETRACK17, COCO17)
    with pytest.raises(ActrecError, match="head, neck"):
        layout_mapping(COCO17, LAYOUTS["crowdpose14"])


# --- COCO categories[].keypoints -------------------------------------------------------------------------------


def test_coco_file_in_another_order_is_mapped_by_name(tmp_path):
    kp = moving_poses(1, 6, 17, seed=3)
    order = np.random.default_rng(0).permutation(17)
    path = _coco_dict(tmp_path / "shuffled.json", kp[:, :, order], [COCO17.joints[i] for i in order])
    (clip,) = read_all([path], "coco-json")
    np.testing.assert_allclose(clip.keypoints, kp, atol=1e-3)  # back in coco17 order


def test_coco_file_with_a_superset_of_names_is_mapped(tmp_path):
    kp = moving_poses(1, 4, 26, seed=4)
    path = _coco_dict(tmp_path / "halpe.json", kp, list(HALPE26.joints))
    (clip,) = read_all([path], "coco-json")
    assert clip.keypoints.shape == (1, 4, 17, 2)
    np.testing.assert_allclose(clip.keypoints, kp[:, :, :17], atol=1e-3)
    (clip,) = read_all([path], "coco-json", layout=HALPE26)
    assert clip.keypoints.shape == (1, 4, 26, 2)


@pytest.mark.parametrize("layout", [H36M17, POSETRACK17], ids=lambda lay: lay.name)
def test_a_17_joint_file_in_another_layout_is_refused_with_both_orders(tmp_path, layout):
    kp = moving_poses(1, 4, 17, seed=5)
    path = _coco_dict(tmp_path / "other.json", kp, list(layout.joints))
    (reject,) = read_all([path], "coco-json")
    assert isinstance(reject, Reject)
    assert f"file order: {', '.join(layout.joints)}" in reject.reason
    assert f"coco17 order: {', '.join(COCO17.joints)}" in reject.reason
    assert f"--layout {layout.name} matches the file" in reject.reason
    (clip,) = read_all([path], "coco-json", layout=layout)  # read with the right layout: kept as written
    np.testing.assert_allclose(clip.keypoints, kp, atol=1e-3)


# --- SLEAP axis orders -----------------------------------------------------------------------------------------


def _sleap_standard(
    path: Path, keypoints: np.ndarray, scores: np.ndarray, *, dims: bool, preset: bool
) -> Path:
    """sleap-io preset='standard': tracks (frames, tracks, nodes, 2), point_scores (frames, tracks, nodes)."""
    with h5py.File(path, "w") as f:
        tracks = f.create_dataset("tracks", data=keypoints.transpose(1, 0, 2, 3))
        scores_ds = f.create_dataset("point_scores", data=scores.transpose(1, 0, 2))
        f.create_dataset("track_occupancy", data=np.isfinite(keypoints).all(-1).any(-1).T.astype(np.uint8))
        f.create_dataset("node_names", data=[f"n{i}".encode() for i in range(keypoints.shape[2])])
        if dims:
            tracks.attrs["dims"] = json.dumps(["frame", "track", "node", "xy"])
            scores_ds.attrs["dims"] = json.dumps(["frame", "track", "node"])
        if preset:
            f.attrs["preset"] = "standard"
            f.attrs["format"] = "analysis"
    return path


@pytest.mark.parametrize(("dims", "preset"), [(True, True), (True, False), (False, True)])
def test_sleap_io_standard_order_is_read_as_stored(tmp_path, dims, preset):
    keypoints, scores = moving_poses(2, 30, 5, seed=9), confidences((2, 30, 5))
    path = _sleap_standard(tmp_path / "mice.analysis.h5", keypoints, scores, dims=dims, preset=preset)
    (clip,) = read_all([path], "h5")
    assert clip.keypoints.shape == (2, 30, 5, 2)  # 2 tracks, 30 frames: not "2 frames, 30 persons"
    np.testing.assert_allclose(clip.keypoints, keypoints, atol=1e-5)
    np.testing.assert_allclose(clip.scores, scores, atol=1e-6)


def test_sleap_legacy_untransposed_order(tmp_path):
    keypoints, scores = moving_poses(3, 10, 4, seed=2), confidences((3, 10, 4))
    with h5py.File(tmp_path / "old.h5", "w") as f:
        f["tracks"] = keypoints.transpose(1, 2, 3, 0)  # (frames, nodes, 2, tracks)
        f["point_scores"] = scores.transpose(1, 2, 0)  # (frames, nodes, tracks)
        f.attrs["transpose"] = False
    (clip,) = read_all([tmp_path / "old.h5"], "h5")
    np.testing.assert_allclose(clip.keypoints, keypoints, atol=1e-5)


def test_sleap_ambiguous_orders_are_refused(tmp_path):
    keypoints, scores = moving_poses(2, 30, 5, seed=9), confidences((2, 30, 5))
    # a standard-order file stripped of its dims/preset: SLEAP's default order does not fit its shape
    path = _sleap_standard(tmp_path / "stripped.h5", keypoints, scores, dims=False, preset=False)
    (reject,) = read_all([path], "h5")
    assert isinstance(reject, Reject)
    assert "axis order is ambiguous" in reject.reason
    # the xy axis happens to be 2 in the matlab reading too (2 nodes): track_occupancy tells them apart
    path = _sleap_standard(
        tmp_path / "two_nodes.h5", keypoints[:, :, :2], scores[:, :, :2], dims=False, preset=False
    )
    (reject,) = read_all([path], "h5")
    assert isinstance(reject, Reject)
    assert "track_occupancy" in reject.reason
    with h5py.File(tmp_path / "custom.h5", "w") as f:
        f["tracks"] = keypoints
        f.attrs["preset"] = "custom"
    (reject,) = read_all([tmp_path / "custom.h5"], "h5")
    assert isinstance(reject, Reject)
    assert "preset='custom'" in reject.reason


def test_sleap_matlab_order_still_reads(tmp_path):
    keypoints, scores = moving_poses(2, 9, 13, seed=8), confidences((2, 9, 13))
    path = write_sleap_analysis(tmp_path / "m.analysis.h5", keypoints, scores, [f"n{i}" for i in range(13)])
    with h5py.File(path, "a") as f:
        f["tracks"].attrs["dims"] = json.dumps(["track", "xy", "node", "frame"])
    (clip,) = read_all([path], "h5")
    np.testing.assert_allclose(clip.keypoints, keypoints, atol=1e-5)


# --- OpenPose --------------------------------------------------------------------------------------------------


def test_openpose_missing_frame_files_become_empty_frames(tmp_path):
    keypoints, scores = moving_poses(1, 10, 25, seed=6), confidences((1, 10, 25))
    folder = write_openpose_clip(tmp_path / "clip", keypoints, scores)
    lost = sorted(folder.glob("*.json"))[4:7]  # frames 4, 5, 6 were never written
    for f in lost:
        f.unlink()
    (clip,) = read_all([folder], "openpose-json", layout=BODY25)
    assert clip.n_frames == 10
    assert np.isnan(clip.keypoints[0, 4:7]).all()
    assert (clip.scores[0, 4:7] == 0).all()
    np.testing.assert_allclose(clip.keypoints[0, 7], keypoints[0, 7], atol=1e-3)


def test_openpose_every_fifth_frame_keeps_its_step(tmp_path):
    keypoints, scores = moving_poses(1, 4, 18, seed=1), confidences((1, 4, 18))
    folder = tmp_path / "sparse"
    folder.mkdir()
    for t in range(4):
        values = np.concatenate([keypoints[0, t], scores[0, t, :, None]], -1).reshape(-1).tolist()
        (folder / f"v_{5 * t:012d}_keypoints.json").write_text(
            json.dumps({"people": [{"pose_keypoints_2d": values}]})
        )
    (clip,) = read_all([folder], "openpose-json", layout=OPENPOSE18)
    assert clip.n_frames == 4


def test_openpose_hint_names_only_openpose_family_layouts(tmp_path):
    folder = write_openpose_clip(tmp_path / "clip", moving_poses(1, 3, 25), confidences((1, 3, 25)))
    (reject,) = read_all([folder], "openpose-json", layout=COCO17)
    assert reject.reason.endswith("--layout body25 matches")
    assert "ntu25" not in reject.reason


# --- --to-layout -----------------------------------------------------------------------------------------------


def test_ingest_to_layout_maps_by_name(tmp_path):
    keypoints, scores = moving_poses(1, 8, 25, seed=2), confidences((1, 8, 25))
    folder = write_openpose_clip(tmp_path / "src" / "wave_1", keypoints, scores)
    manifest = write_manifest(tmp_path / "m.csv", [{"clip_id": "wave_1", "label_name": "wave"}])
    options = ReadOptions(layout=BODY25, labels_csv=manifest)
    report = ingest([folder], out=tmp_path / "kp", fmt="openpose-json", options=options, to_layout=COCO17)
    assert report.n_kept == 1
    store = KeypointStore.open(tmp_path / "kp")
    assert store.layout.name == "coco17"
    assert store.attrs["ingest"]["mapped_from_layout"] == "body25"
    with pytest.raises(ActrecError, match="coco17 has no joint named neck"):
        ingest([folder], out=tmp_path / "kp2", fmt="openpose-json", options=ReadOptions(layout=COCO17),
               to_layout=OPENPOSE18)  # fmt: skip


# --- AlphaPose tracks and frame names --------------------------------------------------------------------------


def _alphapose(path: Path, kp: np.ndarray, sc: np.ndarray, idx, skip=()) -> Path:
    results = []
    for t in range(kp.shape[1]):
        if t in skip:
            continue
        for m in range(kp.shape[0]):
            flat = np.concatenate([kp[m, t], sc[m, t, :, None]], -1).reshape(-1)
            results.append({"image_id": f"{t}.jpg", "category_id": 1, "keypoints": [round(float(v), 3) for v in flat],
                            "score": float(2.5 - m), "box": [1, 2, 30, 60], "idx": idx(m)})  # fmt: skip
    path.write_text(json.dumps(results))
    return path


def test_alphapose_idx_is_the_track_and_frame_names_keep_gaps(tmp_path):
    kp, sc = moving_poses(2, 6, 17, seed=8), confidences((2, 6, 17))
    path = _alphapose(tmp_path / "alphapose-results.json", kp, sc, idx=lambda m: [9 - m], skip=(2,))
    (clip,) = read_all([path], "coco-json")
    assert clip.keypoints.shape == (2, 6, 17, 2)  # frame 2 was named by no detection: an empty frame
    assert np.isnan(clip.keypoints[:, 2]).all()
    np.testing.assert_allclose(clip.keypoints[0, 0], kp[1, 0], atol=1e-3)  # track 8 (person 1) first
    untracked = _alphapose(
        tmp_path / "untracked.json", kp, sc, idx=lambda m: 0
    )  # AlphaPose without --pose_track
    (clip,) = read_all([untracked], "coco-json")
    np.testing.assert_allclose(clip.keypoints[0, 0], kp[0, 0], atol=1e-3)  # by score: person 0 scores higher


def test_sleap_human_nodes_are_read_by_name(tmp_path):
    keypoints, scores = moving_poses(1, 5, 17, seed=3), confidences((1, 5, 17))
    order = np.random.default_rng(2).permutation(17)
    names = [COCO17.joints[i] for i in order]
    path = write_sleap_analysis(
        tmp_path / "person.analysis.h5", keypoints[:, :, order], scores[:, :, order], names
    )
    (clip,) = read_all([path], "h5")
    np.testing.assert_allclose(clip.keypoints, keypoints, atol=1e-5)
    (reject,) = read_all([path], "h5", layout=H36M17)
    assert isinstance(reject, Reject)
    assert "SLEAP node_names" in reject.reason


# MMPose's jhmdb dataset meta (configs/_base_/datasets/jhmdb.py): 'head' where actrec's jhmdb15 says 'face'
MMPOSE_JHMDB = ["neck", "belly", "head", "right_shoulder", "left_shoulder", "right_hip", "left_hip", "right_elbow",
                "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist", "right_ankle", "left_ankle"]  # fmt: skip


def _mmpose_file(path: Path, keypoints: np.ndarray, names: list[str]) -> Path:
    """An MMPose demo output (meta_info + instance_info) of one person, joints in the order `names`."""
    frames = [
        {
            "frame_id": t + 1,
            "instances": [{"keypoints": keypoints[0, t].tolist(), "keypoint_scores": [0.9] * 15}],
        }
        for t in range(keypoints.shape[1])
    ]
    meta = {"dataset_name": "jhmdb", "keypoint_id2name": {str(i): n for i, n in enumerate(names)}}
    path.write_text(json.dumps({"meta_info": meta, "instance_info": frames}))
    return path


def test_mmpose_named_jhmdb_file_reads_by_alias(tmp_path):
    from etl.pose.skeleton import JHMDB15

    assert JHMDB15.names_of("face") == ("face", "head")
    kp = moving_poses(1, 5, 15, seed=6)
    (clip,) = read_all([_mmpose_file(tmp_path / "mmpose.json", kp, MMPOSE_JHMDB)], "mmpose-json", JHMDB15)
    assert isinstance(clip, PoseClip), clip.reason
    np.testing.assert_allclose(clip.keypoints, kp, atol=1e-4)  # 'head' taken as jhmdb15's 'face'
    order = [*MMPOSE_JHMDB[3:], *MMPOSE_JHMDB[:3]]  # the same names in another order: still read by name
    shuffled = kp[:, :, [MMPOSE_JHMDB.index(n) for n in order]]
    (clip,) = read_all([_mmpose_file(tmp_path / "shuffled.json", shuffled, order)], "mmpose-json", JHMDB15)
    np.testing.assert_allclose(clip.keypoints, kp, atol=1e-4)
    unknown = [*MMPOSE_JHMDB[:2], "crown", *MMPOSE_JHMDB[3:]]  # neither 'face' nor an alias of it
    (reject,) = read_all([_mmpose_file(tmp_path / "unknown.json", kp, unknown)], "mmpose-json", JHMDB15)
    assert isinstance(reject, Reject)
    assert "no face in the file" in reject.reason
    assert "file order: neck, belly, crown" in reject.reason
    assert "jhmdb15 order: neck, belly, face" in reject.reason
