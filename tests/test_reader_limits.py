"""--max-persons / --max-frames / --max-clip-bytes for every registered format (issue 25): a clip one person, one
frame or one byte over a limit is rejected with the limit's name, and kept when the limit equals its size."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_formats import ntu_bodies, write_ntu_skeleton, write_sleap_csv
from fixtures_pose import (
    confidences,
    ddnet_pose,
    moving_poses,
    pyskl_annotation,
    utd_skeleton,
    write_coco_results,
    write_ddnet_pickle,
    write_h5_clip,
    write_npz_clip,
    write_openpose_clip,
    write_penn_mat,
    write_pyskl,
    write_sleap_analysis,
    write_utd_mat,
)

from etl.pose.clip import PoseClip, Reject
from etl.pose.limits import BYTES_PER_JOINT
from etl.pose.skeleton import COCO17, JHMDB15, KINECT20, MEDIAPIPE33, NTU25, OPENPOSE18, PENN13
from etl.readers import FORMATS, ReadOptions, read_source

T = 6  # frames of every clip written here


def _poses(m: int, v: int, *, img_h: int = 480, img_w: int = 640):
    return moving_poses(m, T, v, img_h=img_h, img_w=img_w, seed=3), confidences((m, T, v))


def _pyskl(tmp: Path):
    return write_pyskl(tmp / "a.pkl", [pyskl_annotation("c1", 0, 2, T)]), COCO17, 2, {}


def _coco(tmp: Path):
    kp, sc = _poses(2, 17)
    return write_coco_results(tmp / "c.json", kp, sc, track_ids=True), COCO17, 2, {}


def _openpose(tmp: Path):
    kp, sc = _poses(2, 18)
    return write_openpose_clip(tmp / "op" / "clip", kp, sc, person_ids=True), OPENPOSE18, 2, {}


def _h5(tmp: Path):
    kp, sc = _poses(2, 17)
    return write_h5_clip(tmp / "x.h5", kp, sc, {}), COCO17, 2, {}


def _sleap_h5(tmp: Path):
    kp, sc = _poses(2, 4)
    return (
        write_sleap_analysis(tmp / "mice.analysis.h5", kp, sc, ["snout", "ear_l", "ear_r", "tail"]),
        None,
        2,
        {},
    )


def _npz(tmp: Path):
    kp, sc = _poses(2, 17)
    return write_npz_clip(tmp / "x.npz", kp, sc), COCO17, 2, {}


def _penn(tmp: Path):
    return write_penn_mat(tmp / "0001.mat", n_frames=T), PENN13, 1, {}


def _ddnet(tmp: Path):
    return write_ddnet_pickle(tmp / "GT_train_1.pkl", [ddnet_pose(T)], ["wave"]), JHMDB15, 1, {}


def _utd(tmp: Path):
    return write_utd_mat(tmp / "a1_s1_t1_skeleton.mat", utd_skeleton(T)), KINECT20, 1, {}


def _ntu(tmp: Path):
    ids = ["72057594037931101", "72057594037931102"]
    return write_ntu_skeleton(tmp / "S001C001P001R001A001.skeleton", ntu_bodies(2, T), ids), NTU25, 2, {}


def _stgcn(tmp: Path):
    data = np.zeros(
        (1, 3, 10, 18, 2), np.float32
    )  # (N, C, T, V, M): T frames of 2 persons, zero padded to 10
    data[0, :2, :T] = np.random.default_rng(0).uniform(-0.4, 0.4, (2, T, 18, 2))
    data[0, 2, :T] = 0.9
    np.save(tmp / "val_data_joint.npy", data)
    (tmp / "val_label.pkl").write_bytes(pickle.dumps((["abc_1.json"], [3]), protocol=2))
    return tmp / "val_data_joint.npy", OPENPOSE18, 2, {}


def _kinetics(tmp: Path):
    kp, sc = _poses(2, 18, img_h=256, img_w=340)
    frames = [
        {
            "frame_index": t + 1,
            "skeleton": [
                {"pose": (kp[m, t] / (340, 256)).reshape(-1).tolist(), "score": sc[m, t].tolist()}
                for m in range(2)
            ],
        }
        for t in range(T)
    ]
    path = tmp / "k.json"
    path.write_text(json.dumps({"data": frames, "label": "abseiling", "label_index": 0}))
    return path, OPENPOSE18, 2, {}


def _mmpose(tmp: Path):
    kp, sc = _poses(2, 17)
    frames = [
        {
            "frame_id": t + 1,
            "instances": [
                {"keypoints": kp[m, t].tolist(), "keypoint_scores": sc[m, t].tolist(), "track_id": m}
                for m in range(2)
            ],
        }
        for t in range(T)
    ]
    path = tmp / "results_m.json"
    path.write_text(json.dumps(frames))
    return path, COCO17, 2, {}


def _yolo(tmp: Path):
    kp, sc = _poses(2, 17)
    folder = tmp / "walk"
    folder.mkdir()
    for t in range(T):
        lines = []
        for m in range(2):
            xyv = np.concatenate([kp[m, t] / (640, 480), sc[m, t, :, None]], -1).reshape(-1)
            lines.append(" ".join(["0", "0.5", "0.5", "0.2", "0.6", *(f"{v:.6f}" for v in xyv), str(7 + m)]))
        (folder / f"walk_{t + 1}.txt").write_text("\n".join(lines) + "\n")
    return folder, COCO17, 2, {"image_size": (480, 640)}


def _mediapipe(tmp: Path):
    kp, sc = _poses(1, 33)
    path = tmp / "squat.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frame", "landmark", "x", "y", "z", "visibility"])
        for t in range(T):
            for j in range(33):
                x, y = kp[0, t, j] / (640, 480)
                writer.writerow([t, j, x, y, 0.0, sc[0, t, j]])
    return path, MEDIAPIPE33, 1, {"image_size": (480, 640)}


def _dlc(tmp: Path):
    kp, sc = _poses(2, 3)
    columns, data = [], []
    for m in range(2):
        for v, part in enumerate(["snout", "ear_l", "tail"]):
            for c, coord in enumerate(("x", "y", "likelihood")):
                columns.append(("DLC_resnet50", f"mouse{m}", part, coord))
                data.append(kp[m, :, v, c] if c < 2 else sc[m, :, v])
    names = ["scorer", "individuals", "bodyparts", "coords"]
    table = pd.DataFrame(np.stack(data, 1), columns=pd.MultiIndex.from_tuples(columns, names=names))
    path = tmp / "cageDLC_resnet50.csv"
    table.to_csv(path)
    return path, COCO17, 2, {}


def _sleap_csv(tmp: Path):
    kp, sc = _poses(2, 4)
    return (
        write_sleap_csv(tmp / "mice.analysis.csv", kp, sc, ["snout", "ear_l", "ear_r", "tail"]),
        None,
        2,
        {},
    )


CASES = {
    "pyskl": _pyskl,
    "coco-json": _coco,
    "openpose-json": _openpose,
    "h5": _h5,
    "npz": _npz,
    "penn-action": _penn,
    "jhmdb-ddnet": _ddnet,
    "utd-mhad": _utd,
    "ntu-skeleton": _ntu,
    "stgcn-npy": _stgcn,
    "kinetics-skeleton": _kinetics,
    "mmpose-json": _mmpose,
    "yolo-pose": _yolo,
    "mediapipe": _mediapipe,
    "dlc": _dlc,
    "sleap-csv": _sleap_csv,
}
EXTRA = {"h5 (SLEAP)": ("h5", _sleap_h5)}


def test_every_registered_format_has_a_limits_case():
    assert set(CASES) == set(FORMATS)


def _read(path, fmt, layout, options, **limits) -> list[PoseClip | Reject]:
    return list(read_source([path], fmt, ReadOptions(layout or COCO17, **options, **limits)))


@pytest.mark.parametrize(("fmt", "write"), [*CASES.items(), *EXTRA.values()], ids=[*CASES, *EXTRA])
def test_each_format_enforces_every_limit(tmp_path, fmt, write):
    path, layout, n_persons, options = write(tmp_path)
    (clip,) = _read(path, fmt, layout, options)
    assert isinstance(clip, PoseClip), clip.reason
    m, t, v = clip.keypoints.shape[:3]
    assert (m, t) == (n_persons, T)
    clip_bytes = m * t * v * BYTES_PER_JOINT
    (kept,) = _read(path, fmt, layout, options, max_persons=m, max_frames=t)
    assert isinstance(kept, PoseClip), (
        kept.reason
    )  # at the limits: kept (a file's arrays may be wider than the
    # clip's float32, so max_clip_bytes is only checked from above)
    over = {"max_frames": {"max_frames": t - 1}, "max_clip_bytes": {"max_clip_bytes": clip_bytes - 1}}
    if m > 1:
        over["max_persons"] = {"max_persons": m - 1}
    for name, limits in over.items():
        items = _read(path, fmt, layout, options, **limits)
        assert not any(isinstance(item, PoseClip) for item in items), (name, items)
        assert all(name in item.reason for item in items), (name, [item.reason for item in items])


def test_h5_declaring_three_million_frames_is_rejected_before_reading(tmp_path):
    import h5py

    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:  # declared, never written: a few KB on disk
        f.create_dataset("keypoints", shape=(3_000_000, 1, 17, 3), dtype="f4", chunks=(1000, 1, 17, 3))
    (reject,) = _read(path, "h5", COCO17, {}, max_frames=1000)
    assert isinstance(reject, Reject)
    assert "3000000 frames in one clip, more than max_frames=1000" in reject.reason
