"""SLEAP's analysis CSV export and DeepLabCut output folders under `--format auto` (issue 26)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
from fixtures_formats import write_sleap_csv
from fixtures_pose import confidences, moving_poses, write_sleap_analysis

from etl.pose.clip import PoseClip, Reject
from etl.pose.skeleton import COCO17
from etl.readers import ReadOptions, detect_format, detect_source, read_source

FLY = ["head", "thorax", "abdomen", "wing_l", "wing_r"]  # an animal skeleton: no joint of a human layout


def read_all(paths, fmt="sleap-csv", layout=COCO17) -> list[PoseClip | Reject]:
    return list(read_source([Path(p) for p in paths], fmt, ReadOptions(layout)))


def test_sleap_csv_reads_like_the_analysis_h5(tmp_path):
    kp = moving_poses(2, 7, 5, seed=8).astype(np.float64)
    sc = confidences((2, 7, 5)).astype(np.float64)
    kp[1, 3] = np.nan  # track 1 not found in frame 3: no row
    kp[0, 2, 4] = np.nan  # one point missing: empty cells
    path = write_sleap_csv(tmp_path / "flies.000_cam0.analysis.csv", kp, sc, FLY, user_rows=((0, 5),))
    assert detect_format([path]) == "sleap-csv"
    (clip,) = read_all([path])
    assert isinstance(clip, PoseClip), clip.reason
    assert clip.clip_id == "flies.000_cam0"
    assert clip.keypoints.shape == (2, 7, 5, 2)  # one person per track, the file's node order
    np.testing.assert_allclose(clip.keypoints, kp, atol=1e-3)
    assert clip.scores[0, 5].tolist() == [1.0] * 5  # a user-labelled instance: certain points
    assert clip.scores[1, 3].tolist() == [0.0] * 5
    assert clip.scores[0, 2, 4] == 0
    np.testing.assert_allclose(clip.scores[0, 0], sc[0, 0], atol=1e-4)
    h5 = write_sleap_analysis(tmp_path / "flies.000_cam0.analysis.h5", kp, sc, FLY)
    (from_h5,) = read_all([h5], "h5")
    np.testing.assert_allclose(clip.keypoints, from_h5.keypoints, atol=1e-3)  # same axes and tracks as h5


def test_sleap_csv_human_nodes_are_read_in_the_layout_order(tmp_path):
    kp, sc = moving_poses(1, 4, 17, seed=2), confidences((1, 4, 17))
    order = np.random.default_rng(3).permutation(17)
    path = write_sleap_csv(
        tmp_path / "person.csv", kp[:, :, order], sc[:, :, order], [COCO17.joints[i] for i in order]
    )
    (clip,) = read_all([path])
    np.testing.assert_allclose(clip.keypoints, kp, atol=1e-3)


def _dlc_multi_animal(path: Path, kp: np.ndarray, sc: np.ndarray, parts: list[str]) -> Path:
    """DeepLabCut's multi-animal table (MultiIndex scorer/individuals/bodyparts/coords) as its .h5."""
    scorer = "DLC_dlcrnetms5_miceJan1shuffle1_50000"
    columns, data = [], []
    for m in range(kp.shape[0]):
        for v, part in enumerate(parts):
            for c, coord in enumerate(("x", "y", "likelihood")):
                columns.append((scorer, f"mus{m + 1}", part, coord))
                data.append(kp[m, :, v, c] if c < 2 else sc[m, :, v])
    names = ["scorer", "individuals", "bodyparts", "coords"]
    table = pd.DataFrame(np.stack(data, 1), columns=pd.MultiIndex.from_tuples(columns, names=names))
    table.to_hdf(path, key="df_with_missing", format="table", mode="w")
    return path


def test_dlc_output_folder_is_told_by_format_auto(tmp_path):
    kp = moving_poses(2, 5, 4, seed=1).astype(np.float64)
    sc = confidences((2, 5, 4)).astype(np.float64)
    stem = "cage1DLC_dlcrnetms5_miceJan1shuffle1_50000"
    _dlc_multi_animal(tmp_path / f"{stem}_el.h5", kp, sc, ["snout", "leftear", "rightear", "tailbase"])
    (tmp_path / f"{stem}_meta.pickle").write_bytes(pickle.dumps({"data": {"nms radius": 5}}))  # DeepLabCut's
    (tmp_path / "README.md").write_text("mice, 2 animals\n")
    detection = detect_source([tmp_path])
    assert detection.fmt == "dlc"
    assert [p.name for p in detection.ignored] == ["README.md"]
    (clip,) = read_all([tmp_path], "auto")
    assert clip.source_format == "dlc"
    assert clip.keypoints.shape == (2, 5, 4, 2)  # individuals as persons, the animal's own body parts
    np.testing.assert_allclose(clip.keypoints, kp, atol=1e-4)
