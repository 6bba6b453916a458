"""Writers of small, realistic pose files in every supported format, for tests (into tmp_path; no data committed).

Poses come from `moving_poses`: a stick-figure-like cloud of joints per person that drifts and sways over time,
inside the frame, so files look like real tracker output rather than random noise.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from etl.pose.clip import PoseClip


def moving_poses(
    n_persons: int, n_frames: int, n_joints: int, *, img_h: int = 480, img_w: int = 640, seed: int = 0
) -> np.ndarray:
    """(M, T, V, 2) float32 pixel coordinates of persons walking across the frame."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_persons, n_frames, n_joints, 2), np.float32)
    for m in range(n_persons):
        height = rng.uniform(0.4, 0.7) * img_h
        body = np.stack(
            [rng.uniform(-0.15, 0.15, n_joints) * height, np.linspace(-0.5, 0.5, n_joints) * height], -1
        )
        start = np.array([rng.uniform(0.25, 0.75) * img_w, rng.uniform(0.4, 0.6) * img_h])
        t = np.arange(n_frames)[:, None]
        centre = start + np.concatenate([t * rng.uniform(-2, 2), np.sin(t / 5.0) * 3], axis=1)  # (T, 2)
        sway = np.sin(t[..., None] / 4.0 + np.arange(n_joints)[None, :, None]) * 4  # (T, V, 1)
        out[m] = centre[:, None, :] + body[None] + sway
    return np.clip(out, 1, [img_w - 2, img_h - 2]).astype(np.float32)


def confidences(shape: tuple[int, ...], *, seed: int = 1) -> np.ndarray:
    """Detector-like confidences in [0.3, 1.0), float32."""
    return np.random.default_rng(seed).uniform(0.3, 1.0, shape).astype(np.float32)


def make_clip(n_persons: int = 2, n_frames: int = 8, n_joints: int = 17, **changes) -> PoseClip:
    """A valid in-memory PoseClip (as a reader would yield it), with `changes` applied to its fields."""
    fields = {
        "clip_id": "clip_a",
        "keypoints": moving_poses(n_persons, n_frames, n_joints),
        "scores": confidences((n_persons, n_frames, n_joints)),
        "label_name": "wave",
        "split": "train",
        "img_h": 480,
        "img_w": 640,
        "source": "/data/clip_a.npz",
        "source_format": "npz",
        "label": 3,
        "meta": {"fps": 30.0},
    }
    fields.update(changes)
    return PoseClip(**fields)


# --- pickles ---------------------------------------------------------------------------------------------------


def pyskl_annotation(
    frame_dir: str,
    label: int,
    n_persons: int = 2,
    n_frames: int = 12,
    n_joints: int = 17,
    *,
    seed: int = 0,
    with_scores: bool = True,
) -> dict:
    keypoints = moving_poses(n_persons, n_frames, n_joints, img_h=1080, img_w=1920, seed=seed)
    annotation = {
        "frame_dir": frame_dir,
        "label": label,
        "img_shape": (1080, 1920),
        "original_shape": (1080, 1920),
        "total_frames": n_frames,
        "keypoint": keypoints.astype(np.float16),  # PYSKL stores float16
    }
    if with_scores:
        annotation["keypoint_score"] = confidences(keypoints.shape[:3], seed=seed).astype(np.float16)
    return annotation


def write_pyskl(
    path: Path,
    annotations: list[dict],
    splits: dict[str, list[str]] | None = None,
    *,
    protocol: int = 2,
    bare_list: bool = False,
) -> Path:
    """An annotation pickle as mmcv/PYSKL write it (protocol 2 by default, like mmcv.dump)."""
    data = annotations if bare_list else {"split": splits or {}, "annotations": annotations}
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


def ntu_like_pyskl(path: Path) -> Path:
    """Four clips in the NTU-60 split structure: each clip in one xsub list and one xview list."""
    names = ["S001C001P001R001A001", "S001C002P002R001A002", "S002C001P003R002A001", "S002C003P001R002A003"]
    annotations = [
        pyskl_annotation(name, label, seed=i)
        for i, (name, label) in enumerate(zip(names, [0, 1, 0, 2], strict=True))
    ]
    splits = {
        "xsub_train": [names[0], names[2]],
        "xsub_val": [names[1], names[3]],
        "xview_train": [names[1], names[2], names[3]],
        "xview_val": [names[0]],
    }
    return write_pyskl(path, annotations, splits)


def write_ddnet_pickle(path: Path, poses: list[np.ndarray], labels: list[str]) -> Path:
    """DD-Net's GT_{train,test}_{k}.pkl: {'pose': [(T, 15, 2) float64], 'label': [str]}."""
    path.write_bytes(pickle.dumps({"pose": poses, "label": labels}, protocol=3))
    return path


def ddnet_pose(n_frames: int, *, seed: int = 0) -> np.ndarray:
    """(T, 15, 2) normalised JHMDB pos_world-like coordinates, rounded to 3 decimals like DD-Net's."""
    pixels = moving_poses(1, n_frames, 15, img_h=240, img_w=320, seed=seed)[0].astype(np.float64)
    world = np.stack([(pixels[..., 0] / 320 - 0.5) * 320 / 240, pixels[..., 1] / 240 - 0.5], -1) / 0.6
    return np.round(world, 3)


def write_ddnet_folder(folder: Path, n_train: int = 3, n_test: int = 2) -> Path:
    """GT_{train,test}_{1,2,3}.pkl holding the same clips, as in DD-Net's repository."""
    folder.mkdir(parents=True, exist_ok=True)
    classes = ["clap", "golf", "walk"]
    for k in (1, 2, 3):
        for part, n in (("train", n_train), ("test", n_test)):
            poses = [ddnet_pose(15 + 5 * i, seed=10 * k + i) for i in range(n)]
            write_ddnet_pickle(folder / f"GT_{part}_{k}.pkl", poses, [classes[i % 3] for i in range(n)])
    return folder


class _RunsShellCommand:
    """Pickles to a call of os.system: unpickling it with plain pickle.load would run `command`."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def write_malicious_pickle(path: Path, marker: Path) -> Path:
    """A PYSKL-looking pickle whose loading would create `marker` if anything in it were executed."""
    payload = {"split": {}, "annotations": [_RunsShellCommand(f"touch {marker}")]}
    path.write_bytes(pickle.dumps(payload, protocol=2))
    return path


# --- JSON ------------------------------------------------------------------------------------------------------


def write_coco_results(
    path: Path,
    keypoints: np.ndarray,
    scores: np.ndarray,
    *,
    track_ids: bool = False,
    skip_frames: tuple[int, ...] = (),
    first_image_id: int = 1000,
) -> Path:
    """Detector results for one clip: keypoints (M, T, V, 2), scores (M, T, V); frame t has image_id first+t."""
    detections = []
    n_persons, n_frames = keypoints.shape[:2]
    for t in range(n_frames):
        if t in skip_frames:
            continue
        for m in range(n_persons):
            flat = np.concatenate([keypoints[m, t], scores[m, t, :, None]], axis=-1).reshape(-1)
            det = {
                "image_id": first_image_id + t,
                "category_id": 1,
                "keypoints": [round(float(v), 3) for v in flat],
                "score": round(float(scores[m, t].mean()), 4),
            }
            if track_ids:
                det["track_id"] = 7 + m
            detections.append(det)
    path.write_text(json.dumps(detections))
    return path


def write_coco_dataset(
    path: Path, keypoints: np.ndarray, visibility: np.ndarray, *, img_h: int, img_w: int
) -> Path:
    """COCO-style dict, one person per frame with GT visibility flags; images listed out of order on purpose."""
    n_frames = keypoints.shape[1]
    images = [
        {"id": 50 + t, "file_name": f"frame_{t}.jpg", "frame_index": t, "width": img_w, "height": img_h}
        for t in range(n_frames)
    ]
    annotations = []
    for t in range(n_frames):
        flat = np.concatenate([keypoints[0, t], visibility[0, t, :, None]], axis=-1).reshape(-1)
        flat[np.repeat(visibility[0, t] == 0, 3)] = 0  # COCO writes unlabelled joints as 0, 0, 0
        annotations.append(
            {
                "id": t,
                "image_id": 50 + t,
                "category_id": 1,
                "keypoints": [float(v) for v in flat],
                "num_keypoints": int((visibility[0, t] > 0).sum()),
            }
        )
    data = {"images": images[::-1], "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    path.write_text(json.dumps(data))
    return path


def write_openpose_clip(
    folder: Path,
    keypoints: np.ndarray,
    scores: np.ndarray,
    *,
    person_ids: bool = False,
    padded_names: bool = True,
) -> Path:
    """One JSON per frame as OpenPose writes it; missing joints (NaN) are written as x = y = c = 0."""
    folder.mkdir(parents=True, exist_ok=True)
    n_persons, n_frames = keypoints.shape[:2]
    for t in range(n_frames):
        people = []
        for m in range(n_persons):
            kp = np.nan_to_num(keypoints[m, t], nan=0.0)
            c = np.where(np.isnan(keypoints[m, t]).any(-1), 0.0, scores[m, t])
            kp[c == 0] = 0.0
            flat = np.concatenate([kp, c[:, None]], axis=-1).reshape(-1)
            people.append(
                {
                    "person_id": [m] if person_ids else [-1],
                    "pose_keypoints_2d": [round(float(v), 3) for v in flat],
                    "face_keypoints_2d": [],
                    "hand_left_keypoints_2d": [],
                    "hand_right_keypoints_2d": [],
                }
            )
        name = (
            f"{folder.name}_{t:012d}_keypoints.json" if padded_names else f"{folder.name}_{t}_keypoints.json"
        )
        (folder / name).write_text(json.dumps({"version": 1.3, "people": people}))
    return folder


def write_manifest(path: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


# --- HDF5 / npz ------------------------------------------------------------------------------------------------


def _time_first(
    keypoints: np.ndarray, scores: np.ndarray, with_scores_channel: bool
) -> tuple[np.ndarray, np.ndarray]:
    kp = keypoints.transpose(1, 0, 2, 3)  # (T, M, V, 2)
    sc = scores.transpose(1, 0, 2)  # (T, M, V)
    if with_scores_channel:
        return np.concatenate([kp, sc[..., None]], axis=-1), sc
    return kp, sc


def write_h5_clip(
    path: Path, keypoints: np.ndarray, scores: np.ndarray, attrs: dict, *, scores_channel: bool = True
) -> Path:
    """Generic layout, one clip: keypoints (T, M, V, 3) with the score third, or (T, M, V, 2) plus 'scores'."""
    kp, sc = _time_first(keypoints, scores, scores_channel)
    with h5py.File(path, "w") as f:
        f.create_dataset("keypoints", data=kp, compression="gzip")
        if not scores_channel:
            f.create_dataset("scores", data=sc)
        f.attrs.update(attrs)
    return path


def write_h5_many(
    path: Path, clips: dict[str, tuple[np.ndarray, np.ndarray, dict]], root_attrs: dict
) -> Path:
    """Generic layout, many clips under /clips/<clip_id>; root attrs are defaults for every clip."""
    with h5py.File(path, "w") as f:
        f.attrs.update(root_attrs)
        for clip_id, (keypoints, scores, attrs) in clips.items():
            kp, sc = _time_first(keypoints, scores, False)
            group = f.create_group(f"clips/{clip_id}")
            group.create_dataset("keypoints", data=kp)
            group.create_dataset("scores", data=sc)
            group.attrs.update(attrs)
    return path


def write_sleap_analysis(
    path: Path, keypoints: np.ndarray, scores: np.ndarray, node_names: list[str]
) -> Path:
    """A SLEAP analysis HDF5: matrices documented as (frames, nodes, 2, tracks) and stored column-major (MATLAB
    order), so h5py reads 'tracks' as (n_tracks, 2, n_nodes, n_frames). Missing points are NaN."""
    n_tracks, _n_frames = keypoints.shape[:2]
    tracks = keypoints.transpose(1, 2, 3, 0)  # (frames, nodes, 2, tracks), the documented order
    point_scores = scores.transpose(1, 2, 0)  # (frames, nodes, tracks)
    occupancy = np.isfinite(keypoints).all(-1).any(-1).T.astype(np.uint8)  # (frames, tracks)
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "tracks", data=tracks.T
        )  # what SLEAP writes: the transpose, (tracks, 2, nodes, frames)
        f.create_dataset("point_scores", data=point_scores.T)  # (tracks, nodes, frames)
        f.create_dataset("instance_scores", data=np.nan_to_num(point_scores).mean(axis=1).T)
        f.create_dataset("track_occupancy", data=occupancy)
        f.create_dataset("node_names", data=[n.encode() for n in node_names])
        f.create_dataset("track_names", data=[f"track_{m}".encode() for m in range(n_tracks)])
        f.create_dataset("video_path", data="session1/cam0.mp4")
    return path


def write_npz_clip(path: Path, keypoints: np.ndarray, scores: np.ndarray, **attrs) -> Path:
    """One clip: keypoints (T, M, V, 2), scores (T, M, V) and 0-d attribute arrays."""
    kp, sc = _time_first(keypoints, scores, False)
    np.savez_compressed(path, keypoints=kp, scores=sc, **{k: np.array(v) for k, v in attrs.items()})
    return path


# --- MATLAB ----------------------------------------------------------------------------------------------------


def write_penn_mat(
    path: Path,
    *,
    n_frames: int = 20,
    action: str = "squat",
    pose: str = "front",
    train: int = 1,
    img_h: int = 270,
    img_w: int = 480,
    dtype=np.float64,
    seed: int = 0,
    bbox_rows: int | None = None,
) -> Path:
    """A labels/NNNN.mat as in Penn Action: x, y, visibility (T, 13), action, pose, train, bbox, dimensions."""
    points = moving_poses(1, n_frames, 13, img_h=img_h, img_w=img_w, seed=seed)[0]  # (T, 13, 2)
    rng = np.random.default_rng(seed)
    visibility = (rng.uniform(size=(n_frames, 13)) > 0.2).astype(np.uint8)
    x, y = points[..., 0].astype(dtype), points[..., 1].astype(dtype)
    bbox = np.stack([x.min(1), y.min(1), x.max(1), y.max(1)], -1).astype(np.float64)
    scipy.io.savemat(
        path,
        {
            "action": action,
            "pose": pose,
            "x": x,
            "y": y,
            "visibility": visibility,
            "train": np.array([[train]], np.int32),
            "bbox": bbox[: bbox_rows if bbox_rows is not None else n_frames],
            "dimensions": np.array([[img_h, img_w, n_frames]], np.uint16),
            "nframes": np.array([[n_frames]], np.uint8),
        },
    )
    return path


def utd_skeleton(n_frames: int, *, seed: int = 0) -> np.ndarray:
    """(20, 3, T) Kinect camera-space joints in metres: a person about 2.8 m away, y up."""
    rng = np.random.default_rng(seed)
    base = np.stack(
        [rng.uniform(-0.3, 0.3, 20), np.linspace(0.5, -1.1, 20), 2.8 + rng.uniform(-0.1, 0.1, 20)], -1
    )
    t = np.arange(n_frames)
    motion = 0.05 * np.sin(t / 6.0)[:, None, None] * np.array([1.0, 0.5, 0.0])  # (T, 1, 3)
    return (base[None] + motion).transpose(1, 2, 0)  # (20, 3, T)


def write_utd_mat(path: Path, d_skel: np.ndarray) -> Path:
    scipy.io.savemat(path, {"d_skel": d_skel})
    return path


# --- damaged files ---------------------------------------------------------------------------------------------


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut `path` to a fraction of its size, like an interrupted copy."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_keypoint_store(path: Path, clips: list[PoseClip], layout: str = "coco17") -> Path:
    """A sealed keypoint store of `clips` (one class, "a"), written by the store's own writer and finalise_store,
    as ingest writes one but without a reader: for tests that need clips of exact lengths or sizes."""
    import pandas as pd

    from etl.pose.skeleton import get_layout
    from etl.stores.keypoint_store import KeypointWriter, finalise_store

    path.mkdir(parents=True)
    writer = KeypointWriter(path, get_layout(layout))
    rows = []
    for clip in clips:
        writer.add(clip)
        m, t = clip.keypoints.shape[:2]
        rows.append({"clip_id": clip.clip_id, "label": 0, "label_name": "a", "split": clip.split, "n_frames": t,
                     "n_persons": m, "img_h": clip.img_h, "img_w": clip.img_w, "layout": layout,
                     "source": clip.source, "source_format": clip.source_format})  # fmt: skip
    finalise_store(
        path,
        get_layout(layout),
        pd.DataFrame(rows),
        pd.DataFrame(columns=["clip_id", "source", "reason"]),
        classes=["a"],
        label_mode="names",
        content_hash=writer.close(),
        ingest={},
    )
    return path
