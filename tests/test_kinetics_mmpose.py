"""kinetics-skeleton (ST-GCN's Kinetics JSON) and mmpose-json (MMPose 1.x inferencer and demo output)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fixtures_pose import confidences, moving_poses

from etl.pose.clip import PoseClip, Reject
from etl.pose.skeleton import COCO17, H36M17, OPENPOSE18
from etl.readers import ReadOptions, detect_format, read_source


def read_all(paths, fmt, layout=COCO17, **options) -> list[PoseClip | Reject]:
    return list(read_source([Path(p) for p in paths], fmt, ReadOptions(layout=layout, **options)))


def _kinetics(path: Path, keypoints: np.ndarray, scores: np.ndarray, skip: tuple[int, ...] = ()) -> Path:
    """keypoints (M, T, 18, 2) pixels on 340x256 -> the release's normalised, 1-based JSON (3 decimals)."""
    frames = []
    for t in range(keypoints.shape[1]):
        if t in skip:
            continue
        skeleton = [
            {"pose": [round(v, 3) for v in (keypoints[m, t] / (340, 256)).reshape(-1).tolist()],
             "score": [round(v, 3) for v in scores[m, t].tolist()]}
            for m in range(keypoints.shape[0])
        ]  # fmt: skip
        frames.append({"frame_index": t + 1, "skeleton": skeleton})
    path.write_text(json.dumps({"data": frames, "label": "abseiling", "label_index": 0}))
    return path


def test_kinetics_skeleton_frames_persons_and_labels(tmp_path):
    kp = moving_poses(2, 12, 18, img_h=256, img_w=340, seed=3)
    sc = confidences((2, 12, 18))
    sc[1] *= 0.5  # person 1 less confident in every frame
    sc[0, 2, 4] = 0  # an undetected joint
    path = _kinetics(tmp_path / "--07WQ2iBlw.json", kp, sc, skip=(5,))
    assert detect_format([path]) == "kinetics-skeleton"
    (clip,) = read_all([path], "kinetics-skeleton", layout=OPENPOSE18)
    assert clip.clip_id == "--07WQ2iBlw"
    assert clip.keypoints.shape == (2, 12, 18, 2)
    assert (clip.img_h, clip.img_w, clip.label, clip.label_name) == (256, 340, 0, "abseiling")
    np.testing.assert_allclose(clip.keypoints[0, 0], kp[0, 0], atol=0.2)  # 3 decimals of a normalised value
    assert np.isnan(clip.keypoints[:, 5]).all()  # frame 6 had no entry
    assert clip.scores[0, 2, 4] == 0
    assert np.isnan(clip.keypoints[0, 2, 4]).all()


def _mmpose_frames(keypoints: np.ndarray, scores: np.ndarray, track: bool) -> list[dict]:
    frames = []
    for t in range(keypoints.shape[1]):
        instances = []
        for m in range(keypoints.shape[0]):
            inst = {"keypoints": keypoints[m, t].tolist(), "keypoint_scores": scores[m, t].tolist(),
                    "bbox": [[10.0, 20.0, 200.0, 400.0]], "bbox_score": float(0.9 - 0.3 * m)}  # fmt: skip
            if track:
                inst["track_id"] = 3 - m
            instances.append(inst)
        frames.append({"frame_id": t + 1, "instances": instances[::-1]})  # least confident first
    return frames


def test_mmpose_inferencer_frames_by_bbox_score(tmp_path):
    kp, sc = moving_poses(2, 6, 17, seed=1), confidences((2, 6, 17))
    frames = _mmpose_frames(kp, sc, track=False)
    del frames[2]  # no prediction saved for frame 3
    path = tmp_path / "results_walk.json"
    path.write_text(json.dumps(frames))
    assert detect_format([path]) == "mmpose-json"
    (clip,) = read_all([path], "mmpose-json")
    assert clip.clip_id == "walk"
    assert clip.keypoints.shape == (2, 6, 17, 2)
    np.testing.assert_allclose(clip.keypoints[0, 0], kp[0, 0], atol=1e-4)  # person 0 = highest bbox_score
    assert np.isnan(clip.keypoints[:, 2]).all()


def test_mmpose_demo_output_with_track_ids_and_joint_names(tmp_path):
    kp, sc = moving_poses(2, 4, 17, seed=2), confidences((2, 4, 17))
    meta = {"dataset_name": "coco", "keypoint_id2name": {str(i): n for i, n in enumerate(COCO17.joints)}}
    path = tmp_path / "demo.json"
    path.write_text(json.dumps({"meta_info": meta, "instance_info": _mmpose_frames(kp, sc, track=True)}))
    assert detect_format([path]) == "mmpose-json"
    (clip,) = read_all([path], "mmpose-json")
    np.testing.assert_allclose(clip.keypoints[0], kp[1], atol=1e-4)  # track 2 (person 1) is slot 0
    meta["keypoint_id2name"] = {str(i): n for i, n in enumerate(H36M17.joints)}
    path.write_text(json.dumps({"meta_info": meta, "instance_info": _mmpose_frames(kp, sc, track=True)}))
    (reject,) = read_all([path], "mmpose-json")
    assert isinstance(reject, Reject)
    assert "--layout h36m17 matches the file" in reject.reason


def test_mmpose_single_image_instances(tmp_path):
    kp, sc = moving_poses(3, 1, 17, seed=4), confidences((3, 1, 17))
    instances = _mmpose_frames(kp, sc, track=False)[0]["instances"]
    path = tmp_path / "img.json"
    path.write_text(json.dumps(instances))
    assert detect_format([path]) == "mmpose-json"
    (clip,) = read_all([path], "mmpose-json")
    assert clip.keypoints.shape == (3, 1, 17, 2)


def test_a_frame_number_far_beyond_the_entries_is_refused(tmp_path):
    path = tmp_path / "huge.json"
    path.write_text(json.dumps({"data": [{"frame_index": 10**9, "skeleton": [{"pose": [0.5] * 36, "score": [1] * 18}]}],
                                "label": "x", "label_index": 0}))  # fmt: skip
    (reject,) = read_all([path], "kinetics-skeleton", layout=OPENPOSE18)
    assert isinstance(reject, Reject)
    assert "span 1000000000 frames for only 1 entries" in reject.reason
