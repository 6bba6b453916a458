"""Extraction on the real video ../shared/videos/sports2d_demo.mp4 (1768x994 VP9, 230 frames, several people,
backlight) with the default offline backend (MediaPipe BlazePose full), and the round trip extract -> ingest ->
render."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED
from fixtures_video import first_frames, need

need("av")
need("mediapipe")
from etl.video.extract import extract_video  # noqa: E402
from etl.video.options import ExtractOptions  # noqa: E402

VIDEO = SHARED / "videos" / "sports2d_demo.mp4"
pytestmark = [pytest.mark.shared, pytest.mark.slow]


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("poses") / "sports2d_demo.npz"
    extract_video(VIDEO, out)
    return out


def test_a_person_in_most_frames_inside_the_frame(extracted):
    with np.load(extracted, allow_pickle=False) as f:
        kp, sc, times = f["keypoints"], f["scores"], f["timestamps"]  # (T, M, 17, 2), (T, M, 17), (T,)
        assert (int(f["img_w"]), int(f["img_h"]), float(f["fps"])) == (1768, 994, 30.0)
        assert (str(f["backend"]), str(f["layout"]), str(f["codec"])) == ("mediapipe", "coco17", "vp9")
    assert kp.shape[0] == sc.shape[0] == times.shape[0] == 230
    assert kp.shape[2:] == (17, 2)
    with_person = (sc > 0).any(axis=(1, 2))  # (T,)
    assert with_person.mean() > 0.8
    present = np.isfinite(kp).all(axis=-1)
    assert (present == (sc > 0)).all()  # a joint is missing in both or in neither
    xs, ys = kp[..., 0][present], kp[..., 1][present]
    assert xs.min() >= 0
    assert xs.max() < 1768
    assert ys.min() >= 0
    assert ys.max() < 994
    assert (np.diff(times) > 0).all()
    assert times[0] == 0.0
    assert times[-1] == pytest.approx(229 / 30, abs=0.05)


def test_round_trip_extract_ingest_render(extracted, tmp_path):
    from etl.commands.ingest import ingest
    from etl.commands.render import render
    from etl.heatmaps.spec import RenderSpec
    from etl.pose.skeleton import get_layout
    from etl.readers import ReadOptions
    from etl.stores.heatmap_store import HeatmapStore

    labels = tmp_path / "labels.csv"
    labels.write_text("clip_id,label_name\nsports2d_demo,sports\n")
    kp_store = tmp_path / "kp.zarr"
    report = ingest(
        [extracted.parent],
        out=kp_store,
        fmt="npz",
        options=ReadOptions(layout=get_layout("coco17"), labels_csv=labels),
    )
    assert (report.n_total, len(report.rejects)) == (1, 0)
    hm_store = tmp_path / "hm.zarr"
    render(kp_store, hm_store, RenderSpec(size=32), threads=1)
    store = HeatmapStore.open(hm_store)
    assert len(store) == 1


def test_mediapipe33_keeps_all_landmarks(tmp_path):
    short = first_frames(VIDEO, tmp_path / "first40.mp4", 40)
    result = extract_video(short, tmp_path / "first40.npz", ExtractOptions(layout="mediapipe33"))
    assert result.n_frames == 40
    assert result.n_with_person >= 30
    with np.load(result.out) as f:
        assert f["keypoints"].shape[2:] == (33, 2)
        assert str(f["layout"]) == "mediapipe33"


def test_bench_extract_reports_both_rates(tmp_path):
    from fixtures_bench import bench_module

    short = first_frames(VIDEO, tmp_path / "first20.mp4", 20)
    md = bench_module("bench_extract").main(["--video", str(short), "--repeats", "1"])
    assert "| decoding alone (PyAV -> RGB arrays) |" in md
    assert "| extraction, backend mediapipe" in md
    assert "of 20 frames" in md
