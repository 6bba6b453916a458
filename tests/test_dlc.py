"""dlc: DeepLabCut .csv and .h5 predictions, single- and multi-animal, body parts read by name where they are
joint names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from fixtures_pose import confidences, moving_poses

from etl.pose.clip import PoseClip, Reject
from etl.pose.skeleton import COCO17, H36M17
from etl.readers import ReadOptions, detect_format, read_source

SCORER = "DLC_resnet50_reachOct3shuffle1_200000"


def read_all(paths, layout=COCO17) -> list[PoseClip | Reject]:
    return list(read_source([Path(p) for p in paths], "dlc", ReadOptions(layout=layout)))


def _frame(kp: np.ndarray, sc: np.ndarray, parts: list[str], individuals: list[str] | None) -> pd.DataFrame:
    """kp (M, T, V, 2), sc (M, T, V) -> DeepLabCut's table: rows = frames, columns scorer/[individuals]/bodyparts/coords."""
    columns, data = [], []
    for m in range(kp.shape[0]):
        for v, part in enumerate(parts):
            for c, coord in enumerate(("x", "y", "likelihood")):
                key = (SCORER, individuals[m], part, coord) if individuals else (SCORER, part, coord)
                columns.append(key)
                data.append(kp[m, :, v, c] if c < 2 else sc[m, :, v])
    names = (
        ["scorer", "individuals", "bodyparts", "coords"] if individuals else ["scorer", "bodyparts", "coords"]
    )
    return pd.DataFrame(np.stack(data, 1), columns=pd.MultiIndex.from_tuples(columns, names=names))


def test_dlc_csv_single_animal_keeps_an_animal_skeleton(tmp_path):
    kp, sc = moving_poses(1, 9, 5, seed=3).astype(np.float64), confidences((1, 9, 5)).astype(np.float64)
    kp[0, 4, 2] = np.nan  # DeepLabCut's filtered output drops points
    parts = ["snout", "leftear", "rightear", "tailbase", "tailtip"]
    path = tmp_path / f"mouse7{SCORER}.csv"
    _frame(kp, sc, parts, None).to_csv(path)
    assert path.read_text().startswith("scorer,")
    assert detect_format([path]) == "dlc"
    (clip,) = read_all([path])
    assert clip.clip_id == "mouse7"
    assert clip.keypoints.shape == (1, 9, 5, 2)
    np.testing.assert_allclose(clip.keypoints, kp, atol=1e-4)  # names unknown to the layout: file order
    assert clip.scores[0, 4, 2] == 0
    assert clip.meta == {"dlc_scorer": SCORER}


def test_dlc_h5_multi_animal_by_name(tmp_path):
    kp, sc = moving_poses(2, 6, 17, seed=4).astype(np.float64), confidences((2, 6, 17)).astype(np.float64)
    order = np.random.default_rng(1).permutation(17)
    parts = [COCO17.joints[i] for i in order]
    path = tmp_path / f"duo{SCORER}_el.h5"
    _frame(kp[:, :, order], sc[:, :, order], parts, ["person1", "person2"]).to_hdf(
        path, key="df_with_missing", format="table", mode="w"
    )
    assert detect_format([path]) == "dlc"
    (clip,) = read_all([path])
    assert clip.clip_id == "duo"
    assert clip.keypoints.shape == (2, 6, 17, 2)
    np.testing.assert_allclose(clip.keypoints, kp, atol=1e-4)  # back in coco17 order, individuals as persons
    (reject,) = read_all([path], layout=H36M17)
    assert isinstance(reject, Reject)
    assert "h36m17 order:" in reject.reason


def test_dlc_multi_animal_csv_skips_unique_bodyparts(tmp_path):
    kp, sc = moving_poses(2, 4, 3, seed=5).astype(np.float64), confidences((2, 4, 3)).astype(np.float64)
    table = _frame(kp, sc, ["nose", "left_ear", "right_ear"], ["a", "b"])
    table[(SCORER, "single", "food", "x")] = 5.0
    table[(SCORER, "single", "food", "y")] = 6.0
    table[(SCORER, "single", "food", "likelihood")] = 0.9
    path = tmp_path / "pair.csv"
    table.to_csv(path)
    (reject,) = read_all([path])  # coco joint names, but only 3 of them: refused rather than misread
    assert isinstance(reject, Reject)
    assert "no left_eye, right_eye" in reject.reason
