"""3D keypoints in the keypoint store (issue 24): readers keep camera-space joints, the store keeps them in
coords3d beside coords (with checksums3d), the clip table says which clips have them, verify checks them, and
reading 3D where there is none is refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from fixtures_formats import ntu_bodies, write_ntu_skeleton
from fixtures_pose import make_clip, pyskl_annotation, utd_skeleton, write_pyskl, write_utd_mat

from etl.commands.info import store_summary
from etl.commands.ingest import ingest
from etl.common.errors import ActrecError
from etl.pose.clip import Reject
from etl.pose.clip_checks import validate_clip
from etl.pose.skeleton import get_layout
from etl.readers import ReadOptions, read_source
from etl.readers import ntu_skeleton as ntu
from etl.stores.cliptable import read_clip_table
from etl.stores.keypoint_store import (
    COORDS3D,
    DATA_ARRAYS,
    HAS_3D,
    KeypointStore,
    KeypointWriter,
    clip_checksum,
    finalise_store,
)
from etl.stores.verify import verify_store

NTU25, KINECT20, COCO17 = get_layout("ntu25"), get_layout("kinect20"), get_layout("coco17")
UTD_SHARED = Path(__file__).resolve().parents[1] / "../shared/data/utd_mhad_skeleton/Skeleton"


def _ntu_files(folder: Path) -> tuple[Path, np.ndarray]:
    """Two NTU .skeleton files; the first has 2 bodies, one absent in frames 3-4. Returns (folder, its bodies)."""
    folder.mkdir()
    bodies = ntu_bodies(2, 10, seed=1)
    present = np.ones((2, 10), bool)
    present[1, 3:5] = False
    write_ntu_skeleton(
        folder / "S001C001P001R001A001.skeleton", bodies, ["72057594037931101", "72057594037931102"], present
    )
    write_ntu_skeleton(folder / "S001C002P002R001A002.skeleton", ntu_bodies(1, 7, seed=2), ["1"])
    return folder, bodies


@pytest.fixture
def ntu_store(tmp_path) -> tuple[Path, np.ndarray]:
    src, bodies = _ntu_files(tmp_path / "ntu")
    ingest([src], out=tmp_path / "ntu.zarr", fmt="ntu-skeleton", options=ReadOptions(layout=NTU25))
    return tmp_path / "ntu.zarr", bodies


def _coco_store(demo_dir: Path, out: Path) -> Path:
    opts = ReadOptions(layout=COCO17, labels_csv=demo_dir / "clips.csv")
    ingest([demo_dir / "clips"], out=out, fmt="coco-json", options=opts)
    return out


# ------------------------------------------------------------------ readers keep the camera-space joints


def test_ntu_3d_round_trip(ntu_store):
    path, bodies = ntu_store
    store = KeypointStore.open(path)
    table = read_clip_table(path)
    assert table[HAS_3D].tolist() == [True, True]
    assert store.n_clips_3d == 2
    (k3, s3), _ = store.read_range(0, 2, coords="3d")
    (k2, s2), _ = store.read_range(0, 2)
    assert k3.shape == (2, 10, 25, 3)
    assert k2.shape == (2, 10, 25, 2)
    np.testing.assert_array_equal(s3, s2)  # the same scores whichever coordinates
    # metres as the file gives them (written with 7 significant digits)
    np.testing.assert_allclose(k3[0], bodies[0, :, :, 0:3], rtol=1e-6)
    np.testing.assert_allclose(k3[1, :3], bodies[1, :3, :, 0:3], rtol=1e-6)
    assert np.isnan(k3[1, 3:5]).all()
    assert (s3[1, 3:5] == 0).all()
    np.testing.assert_allclose(k2[0], bodies[0, :, :, 5:7], rtol=1e-6)  # 2D stays the colour coordinates
    assert verify_store(path).ok


def test_ntu_3d_is_kept_whatever_the_2d_coordinates(tmp_path):
    src, bodies = _ntu_files(tmp_path / "ntu")
    (clip, _) = list(
        read_source([src], "ntu-skeleton", ReadOptions(layout=NTU25, coords="3d", project="ortho"))
    )
    pixels, _ = ntu.project_3d(bodies[0], "ortho")
    np.testing.assert_allclose(clip.keypoints[0], pixels, rtol=1e-5)
    np.testing.assert_allclose(clip.keypoints3d[0], bodies[0, :, :, 0:3], rtol=1e-6)


@pytest.mark.shared
def test_utd_mhad_sample_round_trip(tmp_path):
    """Two real UTD-MHAD files: the store's 3D rows are d_skel (20, 3, T) in (T, 20, 3) order, float32."""
    import scipy.io

    src = tmp_path / "utd"
    src.mkdir()
    names = ["a1_s1_t1_skeleton.mat", "a2_s2_t1_skeleton.mat"]
    for name in names:
        shutil.copy(UTD_SHARED / name, src / name)
    ingest([src], out=tmp_path / "utd.zarr", fmt="utd-mhad", options=ReadOptions(layout=KINECT20))
    store = KeypointStore.open(tmp_path / "utd.zarr")
    assert store.table[HAS_3D].all()
    for i, name in enumerate(names):
        d_skel = scipy.io.loadmat(src / name)["d_skel"]  # (20, 3, T)
        k3, scores = store.read_clip(i, coords="3d")
        expected = d_skel.transpose(2, 0, 1).astype(np.float32)  # (T, 20, 3)
        tracked = scores[0] > 0
        assert tracked.mean() > 0.9
        np.testing.assert_array_equal(k3[0][tracked], expected[tracked])
        assert np.isnan(k3[0][~tracked]).all()
    assert verify_store(tmp_path / "utd.zarr").ok
    assert "3D joints (coords3d): 2 of 2 clips" in store_summary(tmp_path / "utd.zarr").header


def test_utd_mhad_synthetic_keeps_3d(tmp_path):
    skeleton = utd_skeleton(6)  # (20, 3, T)
    skeleton[4, 2, 2] = 0.0  # an untracked joint: depth 0
    path = write_utd_mat(tmp_path / "a3_s1_t1_skeleton.mat", skeleton)
    (clip,) = list(read_source([path], "utd-mhad", ReadOptions(layout=KINECT20)))
    assert clip.keypoints3d.shape == (1, 6, 20, 3)
    assert clip.keypoints3d.dtype == np.float32
    assert np.isnan(clip.keypoints3d[0, 2, 4]).all()
    assert clip.scores[0, 2, 4] == 0
    np.testing.assert_allclose(clip.keypoints3d[0, 0], skeleton[:, :, 0].astype(np.float32))


def test_pyskl_3d_pickle(tmp_path):
    """PYSKL's 3D annotations: keypoint (M, T, V, 3), no keypoint_score, zero-padded persons."""
    joints = ntu_bodies(2, 6, seed=4)[..., 0:3].astype(np.float32)  # (2, 6, 25, 3) metres
    joints[1, 4:] = 0  # the second person leaves: PYSKL pads with zeros
    ann = {"frame_dir": "S001C001P001R001A005", "label": 4, "keypoint": joints, "total_frames": 6}
    flat = pyskl_annotation("flat2d", 1, n_joints=25)
    path = write_pyskl(tmp_path / "ntu60_3danno.pkl", [ann, flat], {"xsub_train": ["S001C001P001R001A005"]})
    clip3d, clip2d = list(read_source([path], "pyskl", ReadOptions(layout=NTU25)))
    assert clip2d.keypoints3d is None
    np.testing.assert_array_equal(clip3d.keypoints3d[:, :4], joints[:, :4])
    assert np.isnan(clip3d.keypoints3d[1, 4:]).all()
    assert (clip3d.scores[1, 4:] == 0).all()
    assert (clip3d.scores[0] == 1).all()
    pixels, (img_h, img_w) = ntu.project_3d(joints[0].astype(np.float64), "pinhole")
    np.testing.assert_allclose(clip3d.keypoints[0], pixels, rtol=1e-5)
    assert (clip3d.img_h, clip3d.img_w) == (img_h, img_w) == (ntu.DEPTH_H, ntu.DEPTH_W)
    assert clip3d.split == "train"

    # a store of both: the 2D clip has NaN 3D rows and cannot be read as 3D
    ingest([path], out=tmp_path / "mixed.zarr", fmt="pyskl", options=ReadOptions(layout=NTU25))
    store = KeypointStore.open(tmp_path / "mixed.zarr")
    assert store.table[HAS_3D].tolist() == [True, False]
    np.testing.assert_array_equal(store.read_clip(0, coords="3d")[0], clip3d.keypoints3d)
    with pytest.raises(ActrecError, match=r"clip flat2d has no 3D coordinates.*or use --coords 2d") as err:
        store.read_range(0, 2, coords="3d")
    assert "\n" not in str(err.value)
    assert np.isnan(store.read_rows(1, 2, COORDS3D)[0][0]).all()
    assert verify_store(tmp_path / "mixed.zarr").ok
    assert "3D joints (coords3d): 1 of 2 clips" in store_summary(tmp_path / "mixed.zarr").header


def test_a_3d_clip_above_max_clip_bytes_is_rejected(tmp_path):
    """24 bytes per joint with 3D (x, y; x, y, z; score): a limit between 12 and 24 bytes per joint refuses it."""
    src, _ = _ntu_files(tmp_path / "ntu")
    limit = 2 * 10 * 25 * 18  # clip 0: 2 persons x 10 frames x 25 joints, between 12 and 24 bytes per joint
    first, second = list(read_source([src], "ntu-skeleton", ReadOptions(layout=NTU25, max_clip_bytes=limit)))
    assert isinstance(first, Reject)
    assert second.has_3d
    assert "a clip with 3D joints" in first.reason
    assert "max_clip_bytes=9000" in first.reason


# ------------------------------------------------------------------ validation


def test_validate_checks_and_cleans_3d():
    clip = make_clip(1, 4, 17)
    k3 = np.ones((1, 4, 17, 3))
    k3[0, 1, 2] = np.nan
    clip.scores[0, 0, 5] = 0  # missing in 2D: missing in 3D too
    out = validate_clip(clip.__class__(**{**clip.__dict__, "keypoints3d": k3}), COCO17)
    assert out.keypoints3d.dtype == np.float32
    assert np.isnan(out.keypoints3d[0, 0, 5]).all()
    assert np.isnan(out.keypoints3d[0, 1, 2]).all()
    assert out.scores[0, 1, 2] > 0  # a joint without 3D keeps its 2D
    wrong = validate_clip(clip.__class__(**{**clip.__dict__, "keypoints3d": np.ones((1, 4, 17, 2))}), COCO17)
    assert isinstance(wrong, Reject)
    assert "3D keypoints must be (M, T, V, 3)" in wrong.reason
    k3[0, 3, 0, 1] = np.inf
    bad = validate_clip(clip.__class__(**{**clip.__dict__, "keypoints3d": k3}), COCO17, nan_policy="reject")
    assert isinstance(bad, Reject)
    assert "1 non-finite 3D coordinates at frame 3" in bad.reason


# ------------------------------------------------------------------ 2D-only stores are as before


def test_a_2d_store_has_no_trace_of_3d_and_refuses_3d_reads(demo_dir, tmp_path):
    path = _coco_store(demo_dir, tmp_path / "kp.zarr")
    assert not (path / COORDS3D).exists()
    assert not (path / "checksums3d").exists()
    assert HAS_3D not in read_clip_table(path).columns
    attrs = json.loads((path / "zarr.json").read_text())["attributes"]
    assert attrs["integrity"]["data_arrays"] == list(DATA_ARRAYS)
    store = KeypointStore.open(path)
    assert store.checksums3d is None
    assert store.n_clips_3d == 0
    kps, scores = store.read_clip(0)
    assert int(store.checksums[0]) == clip_checksum(kps.reshape(-1, 17, 2), scores.reshape(-1, 17))
    with pytest.raises(ActrecError, match=r"has no 3D coordinates: ingest a source with 3D joints") as err:
        store.read_range(0, 1, coords="3d")
    assert "--coords 2d" in str(err.value)
    assert "\n" not in str(err.value)
    assert "no 3D joints (2D only)" in store_summary(path).header


# ------------------------------------------------------------------ appending, and 3D arriving mid-store


def test_append_3d_to_a_2d_store_and_back(tmp_path):
    flat = [pyskl_annotation(f"flat{i}", 1, n_joints=25, seed=i) for i in range(2)]
    joints = ntu_bodies(1, 5, seed=7)[..., 0:3]
    three = [{"frame_dir": "deep", "label": 2, "keypoint": joints}]
    write_pyskl(tmp_path / "a.pkl", flat)
    write_pyskl(tmp_path / "b.pkl", three)
    write_pyskl(tmp_path / "c.pkl", [pyskl_annotation("flat9", 1, n_joints=25, seed=9)])
    out, opts = tmp_path / "kp.zarr", ReadOptions(layout=NTU25)
    ingest([tmp_path / "a.pkl"], out=out, fmt="pyskl", options=opts)
    assert not (out / COORDS3D).exists()
    ingest([tmp_path / "b.pkl"], out=out, fmt="pyskl", options=opts, mode="append")
    ingest([tmp_path / "c.pkl"], out=out, fmt="pyskl", options=opts, mode="append")
    store = KeypointStore.open(out)
    assert store.table.clip_id.tolist() == ["flat0", "flat1", "deep", "flat9"]
    assert store.table[HAS_3D].tolist() == [False, False, True, False]
    np.testing.assert_allclose(store.read_clip(2, coords="3d")[0], joints, rtol=1e-6)
    assert verify_store(out).ok


def test_3d_arriving_after_whole_chunks_were_written(tmp_path, monkeypatch):
    """coords3d is created at the first 3D clip with NaN rows (real chunk files) for the clips before it; the
    2D clips' checksums3d are computed at close from the scores written, in blocks of ROWS_PER_CHUNK rows."""
    import etl.stores.keypoint_store as ks

    monkeypatch.setattr(ks, "ROWS_PER_CHUNK", 3)  # blocks of 1-2 clips: several reads
    path = tmp_path / "kp.zarr"
    writer = KeypointWriter(path, COCO17, rows_per_chunk=4)
    clips = [make_clip(1, 5, clip_id="a"), make_clip(2, 3, clip_id="b"), make_clip(1, 2, clip_id="c")]
    clips += [make_clip(1, 1, clip_id="d"), make_clip(1, 1, clip_id="e")]  # 15 rows in all
    clips[1].keypoints3d = np.arange(2 * 3 * 17 * 3, dtype=np.float32).reshape(2, 3, 17, 3)
    for clip in clips:
        writer.add(clip)
    content_hash = writer.close()
    table = pd.DataFrame(
        [{"clip_id": c.clip_id, "label": 0, "label_name": "wave", "split": "train", "n_frames": c.n_frames,
          "n_persons": c.n_persons, "img_h": 480, "img_w": 640, "layout": "coco17", "source": "x",
          "source_format": "test", HAS_3D: c.has_3d} for c in clips]
    )  # fmt: skip
    finalise_store(path, COCO17, table, pd.DataFrame(columns=["clip_id", "source", "reason"]), classes=["wave"],
                   label_mode="data", content_hash=content_hash, ingest={})  # fmt: skip
    assert sorted(p.name for p in (path / COORDS3D / "c").iterdir()) == ["0", "1", "2", "3"]  # 15 rows / 4
    store = KeypointStore.open(path)
    np.testing.assert_array_equal(store.read_clip(1, coords="3d")[0], clips[1].keypoints3d)
    assert np.isnan(zarr.open_array(str(path / COORDS3D))[:5]).all()
    for k in (0, 2, 3, 4):  # a 2D clip's checksum3d: its NaN 3D rows, then its scores
        scores = clips[k].scores.reshape(-1, 17).astype(np.float32)  # (M*T, V)
        nan_rows = np.full((len(scores), 17, 3), np.nan, np.float32)  # (M*T, V, 3)
        assert int(store.checksums3d[k]) == clip_checksum(nan_rows, scores)
    assert verify_store(path).ok


# ------------------------------------------------------------------ verify covers the 3D rows


def test_verify_catches_a_damaged_3d_chunk(ntu_store, tmp_path):
    path, _ = ntu_store
    arr = zarr.open_array(str(path / COORDS3D), mode="r+")
    arr[12] = arr[12] + 1.0  # row 12: clip 0 (2 persons x 10 frames = rows 0-19), a re-encoded chunk
    report = verify_store(path)
    assert [clip for clip, _ in report.bad] == ["S001C001P001R001A001"]
    assert "coords3d" in report.bad[0][1]
    assert "fails its checksum" in report.bad[0][1]
    store = KeypointStore.open(path)
    store.read_range(0, 2)  # the 2D data is intact
    with pytest.raises(ActrecError, match="fails its checksum"):
        store.read_range(0, 2, coords="3d")


def test_verify_catches_an_undecodable_or_missing_3d_chunk(ntu_store, tmp_path):
    path, _ = ntu_store
    chunk = path / COORDS3D / "c" / "0" / "0" / "0"
    chunk.write_bytes(b"\x00garbage" * 8)
    report = verify_store(path)
    assert {clip for clip, _ in report.bad} == {"S001C001P001R001A001", "S001C002P002R001A002"}
    chunk.unlink()
    report = verify_store(path)
    assert report.bad == [("coords3d/c/0/0/0", "chunk file is missing")]


def test_a_store_whose_coords3d_was_removed_is_refused(ntu_store):
    path, _ = ntu_store
    shutil.rmtree(path / COORDS3D)
    with pytest.raises(ActrecError, match=r"coords3d/zarr.json: file is missing"):
        KeypointStore.open(path)


# ------------------------------------------------------------------ h5 and npz: `keypoints3d` beside `keypoints`


def test_h5_and_npz_keypoints3d(tmp_path):
    import h5py

    rng = np.random.default_rng(5)
    kp = rng.uniform(10, 200, (6, 2, 17, 2)).astype(np.float32)  # (T, M, V, 2) as stored
    scores = np.ones((6, 2, 17), np.float32)
    scores[2, 1, 3] = 0  # a missing joint: missing in 3D too
    k3 = rng.normal(0, 1, (6, 2, 17, 3)).astype(np.float32)  # (T, M, V, 3)
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f.create_dataset("keypoints", data=kp)
        f.create_dataset("scores", data=scores)
        f.create_dataset("keypoints3d", data=k3)
        f.attrs.update({"label_name": "wave", "img_h": 240, "img_w": 320})
    np.savez(tmp_path / "one.npz", keypoints=kp, scores=scores, keypoints3d=k3, label_name=np.array("wave"))
    np.savez(tmp_path / "bad.npz", keypoints=kp, scores=scores, keypoints3d=k3[..., :2])
    for name in ("one.h5", "one.npz"):
        (clip,) = list(read_source([tmp_path / name], name.split(".")[1], ReadOptions(layout=COCO17)))
        expected = k3.transpose(1, 0, 2, 3).copy()  # (M, T, V, 3)
        expected[1, 2, 3] = np.nan
        np.testing.assert_array_equal(clip.keypoints3d, expected)
        assert "keypoints3d" not in clip.meta
    (bad,) = list(read_source([tmp_path / "bad.npz"], "npz", ReadOptions(layout=COCO17)))
    assert isinstance(bad, Reject)
    assert "'keypoints3d' must be numeric (T, M, V, 3) = (6, 2, 17, 3)" in bad.reason


def test_to_layout_takes_the_3d_joints_by_name_too(tmp_path):
    src, bodies = _ntu_files(tmp_path / "ntu")
    penn13 = get_layout("penn13")
    ingest(
        [src],
        out=tmp_path / "penn.zarr",
        fmt="ntu-skeleton",
        options=ReadOptions(layout=NTU25),
        to_layout=penn13,
    )
    store = KeypointStore.open(tmp_path / "penn.zarr")
    k3, _ = store.read_clip(0, coords="3d")
    assert k3.shape == (2, 10, 13, 3)
    picks = [NTU25.joints.index(name) for name in penn13.joints]  # penn13's joints, taken from ntu25 by name
    np.testing.assert_allclose(k3[0], bodies[0][:, picks, 0:3], rtol=1e-6)
