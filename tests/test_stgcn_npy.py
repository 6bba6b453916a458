"""stgcn-npy: ST-GCN `<part>_data_joint.npy` + `<part>_label.pkl`, and CTR-GCN's NTU60_CS.npz."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from fixtures_formats import stgcn_kinetics_arrays

from etl.pose.clip import PoseClip, Reject
from etl.pose.skeleton import NTU25, OPENPOSE18
from etl.readers import ReadOptions, detect_format, read_source, stgcn_npy


def read_all(paths, layout=OPENPOSE18, **options) -> list[PoseClip | Reject]:
    return list(read_source([Path(p) for p in paths], "stgcn-npy", ReadOptions(layout=layout, **options)))


def _write_stgcn(folder: Path, part: str, data: np.ndarray, names: list[str], labels: list[int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{part}_data_joint.npy", data)
    (folder / f"{part}_label.pkl").write_bytes(pickle.dumps((names, labels), protocol=2))
    return folder


def test_stgcn_kinetics_arrays_padding_and_pixels(tmp_path, monkeypatch):
    data = stgcn_kinetics_arrays(3, [40, 300, 7])
    folder = _write_stgcn(
        tmp_path / "kinetics", "val", data, ["abc_1.json", "def_2.json", "ghi_3.json"], [5, 0, 5]
    )
    assert detect_format([folder]) == "stgcn-npy"
    loads = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: loads.append(k.get("mmap_mode")) or real_load(*a, **k))
    clips = read_all([folder])
    assert loads == ["r"]  # memory-mapped, never loaded whole
    assert [c.clip_id for c in clips] == ["abc_1", "def_2", "ghi_3"]
    assert [c.n_frames for c in clips] == [40, 300, 7]
    assert all(c.n_persons == 1 for c in clips)
    first = clips[0]
    assert (first.img_h, first.img_w, first.split, first.label) == (256, 340, "test", 5)
    expected = (data[0, :2, :40, :, 0].transpose(1, 2, 0) + 0.5) * [340, 256]
    expected[:, 3] = np.nan  # the undetected joint
    np.testing.assert_allclose(first.keypoints[0], expected, atol=1e-3)
    np.testing.assert_allclose(first.scores[0, :, 0], data[0, 2, :40, 0, 0], atol=1e-6)
    assert (first.scores[0, :, 3] == 0).all()
    (sized,) = read_all([folder / "val_data_joint.npy"], image_size=(720, 1280))[:1]
    assert sized.img_w == 1280
    assert np.nanmax(sized.keypoints[..., 0]) > 340


def test_stgcn_ntu_3d_arrays_with_sample_names(tmp_path):
    rng = np.random.default_rng(0)
    data = np.zeros((2, 3, 300, 25, 2), np.float32)
    data[:, 0, :50] = rng.uniform(-0.4, 0.4, (2, 50, 25, 2))
    data[:, 1, :50] = rng.uniform(-0.8, 0.8, (2, 50, 25, 2))
    data[:, 2, :50] = rng.uniform(2.5, 3.5, (2, 50, 25, 2))  # camera-space metres
    names = ["S001C001P001R001A023.skeleton", "S002C003P003R002A050.skeleton"]
    folder = _write_stgcn(tmp_path / "xsub", "train", data, names, [22, 49])
    (reject, _) = read_all([folder], layout=NTU25)
    assert isinstance(reject, Reject)
    kinetics = read_all([_write_stgcn(tmp_path / "k", "val", stgcn_kinetics_arrays(1, [5]), ["a.json"], [0])])
    assert kinetics[0].keypoints3d is None  # (x, y, score): no 3D
    assert "pass --coords 3d" in reject.reason
    first, second = read_all([folder], layout=NTU25, coords="3d")
    assert first.clip_id == "S001C001P001R001A023"
    assert first.label_name == "hand waving"
    assert first.keypoints.shape == (2, 50, 25, 2)
    assert (first.img_h, first.img_w) == (424, 512)
    # the camera-space joints are kept as the clip's 3D keypoints: (C, T, V, M) -> (M, T, V, C)
    np.testing.assert_array_equal(first.keypoints3d, data[0, :, :50].transpose(3, 1, 2, 0))
    assert second.meta["camera"] == 3
    assert second.meta["split_xsub"] == "test"
    assert second.split == "train"


def test_ctrgcn_npz_is_streamed_row_by_row(tmp_path):
    rng = np.random.default_rng(1)
    x_train = np.zeros((3, 64, 2 * 25 * 3), np.float32)
    x_train[:, :30] = rng.normal(0, 0.3, (3, 30, 150))
    x_train[:, :30, 75:] = 0  # one person only
    y_train = np.eye(60, dtype=np.float32)[[4, 0, 59]]
    x_test = np.zeros((1, 64, 150), np.float32)
    x_test[0, :10] = rng.normal(0, 0.3, (10, 150))
    path = tmp_path / "NTU60_CS.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=np.eye(60, dtype=np.float32)[[7]])
    assert detect_format([path]) == "stgcn-npy"
    clips = read_all([path], layout=NTU25, project="ortho")
    assert [c.clip_id for c in clips] == ["NTU60_CS_train_000000", "NTU60_CS_train_000001", "NTU60_CS_train_000002",
                                          "NTU60_CS_test_000000"]  # fmt: skip
    assert [c.label for c in clips] == [4, 0, 59, 7]
    assert [c.split for c in clips] == ["train"] * 3 + ["test"]
    first = clips[0]
    assert first.keypoints.shape == (1, 30, 25, 2)
    xyz = x_train[0, :30, :75].reshape(30, 25, 3)
    scale = (
        stgcn_npy.project_3d(np.array([[1.0, 0, 1]]), "ortho")[0][0, 0]
        - stgcn_npy.project_3d(np.zeros((1, 3)), "ortho")[0][0, 0]
    )
    np.testing.assert_allclose(np.diff(first.keypoints[0, :, :2, 0], axis=1)[..., 0],
                               np.diff(xyz[:, :2, 0], axis=1)[..., 0] * scale, rtol=1e-4)  # fmt: skip
    np.testing.assert_array_equal(first.keypoints3d[0], xyz)


def test_stgcn_bad_files_are_rejects(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    np.save(folder / "train_data_joint.npy", np.zeros((2, 3, 10, 18, 2), np.float32))
    (reject,) = read_all([folder])
    assert "no label file train_label.pkl" in reject.reason
    (folder / "train_label.pkl").write_bytes(pickle.dumps((["a"], [1]), protocol=2))
    (reject,) = read_all([folder])
    assert "names 1 samples but the data holds 2" in reject.reason
    (folder / "train_label.pkl").write_bytes(pickle.dumps((["a", "b"], [1, 2]), protocol=2))
    rejects = read_all([folder])
    assert all("every value is 0" in r.reason for r in rejects)


@pytest.mark.parametrize("protocol", [2, 4])
def test_stgcn_label_pickle_goes_through_the_safe_loader(tmp_path, protocol):
    folder = _write_stgcn(tmp_path / "k", "train", stgcn_kinetics_arrays(1, [5]), ["x"], [np.int64(3)])
    (folder / "train_label.pkl").write_bytes(pickle.dumps((["x"], [Path("evil")]), protocol=protocol))
    (reject,) = read_all([folder])
    assert isinstance(reject, Reject)
    assert "refused to load the global" in reject.reason
