"""bench/bench_gcn_pipeline.py at tiny sizes: our coordinate source and MMAction2 1.2's ST-GCN++ train pipeline (in
the anchor venv) give bit-identical samples when both draw from the same RandomState, on a penn13 store (so the
layout's bone pairs replace the config's coco ones) with short, mid-length and long clips and 1 or 3 persons."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures_bench import bench_module
from fixtures_pose import write_keypoint_store

from etl.pose.clip import PoseClip

# (frames, persons): < 100 frames (looped), 100..199 (frames skipped), >= 200 (one per segment); 3 persons cut to 2
CLIPS = [(40, 1), (150, 3), (260, 1), (100, 2)]


def penn13_store(path):
    """Random moving poses, some joints missing (NaN, score 0): what the anchor gets as 0 with score 0."""
    rng = np.random.default_rng(11)
    clips = []
    for i, (t, m) in enumerate(CLIPS):
        drift = np.linspace(0, 120, t, dtype=np.float32)[None, :, None, None]  # (1, T, 1, 1)
        kps = (rng.random((m, t, 13, 2)) * 200 + 40 + drift).astype(np.float32)  # (M, T, V, 2)
        scores = rng.uniform(0.2, 1.0, (m, t, 13)).astype(np.float32)  # (M, T, V)
        missing = rng.random((m, t, 13)) < 0.1
        kps[missing] = np.nan
        scores[missing] = 0
        clips.append(PoseClip(f"c{i:03d}", kps, scores, "a", "train", 360, 480, "x", "y"))
    return write_keypoint_store(path, clips, layout="penn13")


@pytest.mark.shared
@pytest.mark.slow
def test_bench_gcn_pipeline_matches_mmaction2(tmp_path, capsys):
    bench = bench_module("bench_gcn_pipeline")
    bench.anchor_python()  # creates the anchor venv from ../shared/anchor when missing
    store = penn13_store(tmp_path / "penn13.zarr")
    out = tmp_path / "r.json"
    args = ["--store", str(store), "--clips", "4", "--passes", "1", "--rounds", "1", "--streams", "b", "jm"]
    assert bench.main([*args, "--json-out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["clips"] == 4
    assert r["bone_pairs_replaced"]
    for s in ("b", "jm"):
        p = r["parity"][s]
        assert p["shape_ours"] == p["shape_anchor"] == [2, 100, 13, 3]
        assert p["same_frames"] == p["identical"] == 4
        assert p["max_abs_diff"] == 0
        assert r["anchor_s"][s] > 0
        assert r["ours_s"][s] > 0
    md = capsys.readouterr().out
    assert "| b |" in md
    assert "identical 4/4" in md
