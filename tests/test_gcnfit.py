"""Graph networks in training (issue #24): `--source coordinates` (PYSKL's GCN pipeline on a keypoint store),
stgcnpp / ctrgcn fit and evaluate, the model/source pairing refusals, the checkpoint record, exact resume."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_train import tiny
from typer.testing import CliRunner

from train.checkpoint import load_checkpoint, load_model
from train.cli import app
from train.fit import fit
from train.sources.coordinates import (
    NUM_PERSON,
    CoordinateSource,
    clip_features,
    pad_persons,
    random_scale_rotate,
)

runner = CliRunner()


def _quiet(*_):
    pass


def gcn_tiny(kp_store: Path, out: Path, **kw):
    return tiny(kp_store, out, source="coordinates", model=kw.pop("model", "stgcnpp"), clip_len=12, **kw)


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------- the source


def test_coordinate_items_are_pyskl_shaped_and_deterministic(keypoint_store):
    src = CoordinateSource.open(keypoint_store, coordinates={"stream": "j", "strong_augment": True})
    rows = src.table.iloc[:4]
    train = src.dataset(rows, clip_len=10, train=True, seed=3)
    x, label = train[(1, 2)]
    v = len(src.layout.joints)
    assert x.shape == (NUM_PERSON, 10, v, 3)
    assert x.dtype == torch.float32
    assert label == int(rows["label"].iat[1])
    assert torch.equal(x, train[(1, 2)][0])  # a function of (seed, epoch, clip) only
    assert not torch.equal(x, train[(1, 3)][0])  # another epoch, another draw
    # 2D pre-normalisation: centred and scaled by the image, so real joints lie around [-1, 1]
    seen = x[..., 2] > 0
    assert seen.any()
    assert x[..., :2][seen].abs().max() < 2
    views, _ = src.dataset(rows, clip_len=10, train=False, num_clips=3)[0]
    assert views.shape == (3, NUM_PERSON, 10, v, 3)


def test_streams_differ_and_bones_follow_the_parents(keypoint_store):
    items = {}
    for name in ("j", "b", "jm", "bm"):
        src = CoordinateSource.open(keypoint_store, coordinates={"stream": name})
        items[name] = src.features(0, None)
    j, b = items["j"], items["b"]
    parents = np.asarray(src.parents)
    np.testing.assert_allclose(b[..., :2], j[..., :2] - j[:, :, parents, :2], atol=1e-6)
    np.testing.assert_allclose(items["jm"][:, 0, :, :2], j[:, 1, :, :2] - j[:, 0, :, :2], atol=1e-6)
    assert not np.allclose(items["bm"], items["b"])


@pytest.mark.parametrize("stream", ["j", "bm"])
def test_features_are_computed_once_as_the_clip_computes_now_and_samples_leave_them_alone(
    keypoint_store, stream
):
    """Without --strong-augment the source computes each clip's features when it opens (not per sample): they
    must be what the pipeline gives the clip read from the store now, and no sample may write into them."""
    from etl.stores.keypoint_store import KeypointStore

    src = CoordinateSource.open(keypoint_store, coordinates={"stream": stream})
    clips = KeypointStore.open(keypoint_store).read_range(0, len(src.table))
    for row, (kp, sc) in enumerate(clips):
        h, w = (int(v) for v in src.table[["img_h", "img_w"]].iloc[row])
        want = clip_features(kp, sc, (h, w), "2d", stream, src.parents, src.center)
        np.testing.assert_array_equal(src.features(row, None), want)
        assert not src.features(row, None).flags.writeable  # one copy for every sample: read-only
    before = [src.features(r, None).copy() for r in range(len(src.table))]
    train = src.dataset(src.table, clip_len=10, train=True, seed=1)
    for i in range(len(train)):
        train[(i, 0)][0].mul_(0).add_(7)  # a batch edited in place (as augmentations on the tensor may)
    views, _ = src.dataset(src.table.iloc[:1], clip_len=10, train=False, num_clips=2)[0]
    views.fill_(7)
    for r, b in enumerate(before):
        np.testing.assert_array_equal(src.features(r, None), b)


def test_strong_augment_scales_and_rotates_and_persons_are_padded():
    kp = np.ones((1, 4, 5, 2), np.float32)
    out = random_scale_rotate(kp, np.random.RandomState(0))
    assert out.shape == kp.shape
    assert not np.allclose(out, kp)
    assert pad_persons(np.ones((1, 4, 5, 3), np.float32)).shape == (2, 4, 5, 3)
    assert pad_persons(np.ones((3, 4, 5, 3), np.float32))[1].sum() == 60


def test_fit_and_evaluate_a_graph_model_on_real_3d_joints(tmp_path):
    """An NTU .skeleton store (camera-space x, y, z kept by ingest) -> --coords 3d: the model sees the store's 3D
    joints, centred on the layout's center joint (PreNormalize3D), not the 2D projection."""
    from fixtures_formats import ntu_bodies, write_ntu_skeleton

    from etl.commands.ingest import ingest
    from etl.pose.skeleton import get_layout
    from etl.readers import ReadOptions
    from etl.stores.keypoint_store import KeypointStore

    src_dir = tmp_path / "ntu"
    src_dir.mkdir()
    for i, (subject, action) in enumerate([(1, 1), (2, 2), (1, 2), (2, 1)]):
        name = f"S001C001P00{subject}R001A00{action}.skeleton"
        write_ntu_skeleton(src_dir / name, ntu_bodies(1, 12, seed=i), [str(i)])
    store = tmp_path / "ntu.zarr"
    ingest([src_dir], out=store, fmt="ntu-skeleton", options=ReadOptions(layout=get_layout("ntu25")))
    source = CoordinateSource.open(store, coordinates={"coords": "3d"})
    assert source.channels == ["x", "y", "z"]
    kp3d, _ = KeypointStore.open(store).read_range(0, 1, coords="3d")[0]  # (M, T, V, 3)
    x = source.features(0, None)  # (M, T, V, 3), centred on the first frame's center joint
    centre = kp3d[0, 0, source.center]
    np.testing.assert_allclose(x[0, :, :, :3], kp3d[0] - centre, atol=1e-5)
    run = tmp_path / "run"
    args = [
        "fit",
        str(store),
        "--source",
        "coordinates",
        "--model",
        "stgcnpp",
        "--coords",
        "3d",
        "--preset",
        "tiny",
    ]
    where = [
        "--train-where",
        "n_frames > 0",
        "--val-where",
        "n_frames > 0",
        "--epochs",
        "1",
        "--workers",
        "0",
    ]
    res = runner.invoke(app, [*args, *where, "--out", str(run)])
    assert res.exit_code == 0, res.output
    assert load_checkpoint(run / "last.pt")["coordinates"]["coords"] == "3d"
    res = runner.invoke(app, ["evaluate", str(run / "last.pt"), str(store), "--workers", "0", "--clips", "2", "--where", "n_frames > 0",
                              "--out", str(tmp_path / "eval.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(json.loads((tmp_path / "eval.json").read_text())["clip_scores"]) == 4


def test_3d_on_a_store_without_3d_is_refused_in_one_line(keypoint_store, tmp_path):
    args = ["fit", str(keypoint_store), "--source", "coordinates", "--model", "stgcnpp", "--coords", "3d"]
    res = runner.invoke(app, [*args, "--preset", "tiny", "--workers", "0", "--out", str(tmp_path / "r")])
    assert res.exit_code == 1
    assert "3D" in res.output
    assert "Traceback" not in res.output


# ------------------------------------------------------------------------------------ fit / evaluate


@pytest.mark.parametrize("model", ["stgcnpp", "ctrgcn"])
@pytest.mark.parametrize("stream", ["j", "b", "jm", "bm"])
def test_fit_tiny_graph_models_on_each_stream(model, stream, keypoint_store, tmp_path):
    run = tmp_path / "run"
    fit(gcn_tiny(keypoint_store, run, model=model, stream=stream, epochs=1), log=_quiet)
    ckpt = load_checkpoint(run / "last.pt")
    assert len(ckpt["history"]) == 1
    assert 0 <= ckpt["history"][0]["val_top1"] <= 1
    assert "render" not in ckpt
    rec = ckpt["coordinates"]
    assert (rec["stream"], rec["coords"], rec["clip_len"], rec["layout"]) == (stream, "2d", 12, "coco17")
    assert ckpt["model_config"]["layout"] == "coco17"
    assert ckpt["model_config"]["in_channels"] == 3
    assert ckpt["fit_config"]["stream"] == stream
    assert load_model(run / "last.pt").model_name == model


def test_evaluate_a_graph_checkpoint_with_10_clips_and_refuse_other_streams(keypoint_store, tmp_path):
    run = tmp_path / "run"
    fit(gcn_tiny(keypoint_store, run, epochs=1, stream="b"), log=_quiet)
    out = tmp_path / "eval.json"
    base = [
        "evaluate",
        str(run / "last.pt"),
        str(keypoint_store),
        "--source",
        "coordinates",
        "--workers",
        "0",
    ]
    res = runner.invoke(app, [*base, "--out", str(out)])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["clips"] == 10
    # flip was asked (evaluate's default) but not done: graph models are tested unflipped
    assert result["flip"] is False
    assert "(10 views): top1" in res.output  # and the summary line does not claim a flip
    assert 0 <= result["top1"] <= 1
    # without --source evaluate reads what the model consumes; a source that gives heatmaps is refused
    default = runner.invoke(app, ["evaluate", str(run / "last.pt"), str(keypoint_store), "--workers", "0"])
    assert default.exit_code == 0, default.output
    heat = runner.invoke(
        app, ["evaluate", str(run / "last.pt"), str(keypoint_store), "--workers", "0", "--source", "heatmaps"]
    )
    assert heat.exit_code == 1
    assert "model stgcnpp trains on coordinates" in heat.output
    assert "--source coordinates" in heat.output


def test_heatmap_checkpoints_do_not_record_the_coordinate_options(heatmap_store, tmp_path):
    fit(tiny(heatmap_store, tmp_path / "hm", epochs=1), log=_quiet)
    saved = load_checkpoint(tmp_path / "hm" / "last.pt")
    assert "coordinates" not in saved
    assert "render" in saved
    assert not {"stream", "coords", "strong_augment"} & set(saved["fit_config"])
    lines = []
    fit(replace(tiny(heatmap_store, tmp_path / "hm", epochs=2), resume=True), log=lines.append)
    assert any("resuming" in line for line in lines)


# ------------------------------------------------------------------------------------ refusals (CLI)


def test_refusals_are_one_line(keypoint_store, heatmap_store, tmp_path):
    out = ["--preset", "tiny", "--workers", "0", "--epochs", "1", "--out", str(tmp_path / "r")]
    graph_on_heatmaps = runner.invoke(app, ["fit", str(heatmap_store), "--model", "stgcnpp", *out])
    assert graph_on_heatmaps.exit_code == 1
    assert (
        "model stgcnpp trains on coordinates: pass the keypoint store with --source coordinates, not --source "
        "heatmaps" in graph_on_heatmaps.output
    )
    heat_on_coords = runner.invoke(
        app, ["fit", str(keypoint_store), "--model", "c3d", "--source", "coordinates", *out]
    )
    assert heat_on_coords.exit_code == 1
    assert "model c3d trains on heatmaps" in heat_on_coords.output
    assert "not --source coordinates" in heat_on_coords.output
    stream = runner.invoke(
        app,
        ["fit", str(keypoint_store), "--model", "ctrgcn", "--source", "coordinates", "--stream", "x", *out],
    )
    assert stream.exit_code == 1
    assert "--stream must be one of j, b, jm, bm, not 'x'" in stream.output
    for res in (graph_on_heatmaps, heat_on_coords, stream):
        assert "Traceback" not in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1, res.output


# ------------------------------------------------------------------------------------ exact resume


@pytest.mark.slow
def test_graph_resume_with_workers_continues_exactly(keypoint_store, tmp_path):
    """3 epochs straight == 1 epoch, stop, --resume, with 2 workers and the strong augmentation drawing."""

    def cfg(out):
        return gcn_tiny(keypoint_store, out, epochs=3, workers=2, strong_augment=True, dropout=0.2)

    fit(cfg(tmp_path / "straight"), log=_quiet)

    class Stop(Exception):
        pass

    def stop_in_epoch_2(line: str) -> None:
        if line.startswith("epoch 2/3"):
            raise Stop

    run = tmp_path / "resumed"
    with pytest.raises(Stop):
        fit(cfg(run), log=stop_in_epoch_2)
    assert load_checkpoint(run / "last.pt")["epoch"] == 0
    lines = []
    fit(replace(cfg(run), resume=True), log=lines.append)
    assert any("resuming" in line for line in lines)
    assert _same(_weights(tmp_path / "straight" / "last.pt"), _weights(run / "last.pt"))


# ------------------------------------------------------------------------------------ deploy


def test_export_a_graph_model_and_predict_its_file(keypoint_store, demo_dir, tmp_path):
    from train.deploy.export import export_model, read_torchscript_metadata

    run = tmp_path / "run"
    fit(gcn_tiny(keypoint_store, run, model="ctrgcn", epochs=1), log=_quiet)
    report = export_model(run / "last.pt", tmp_path / "m.pt", "torchscript")
    assert report.max_abs_diff < 1e-4
    meta = read_torchscript_metadata(tmp_path / "m.pt")
    assert meta["input"]["shape"] == ["batch", NUM_PERSON, "frames", 17, 3]
    assert meta["coordinates"]["stream"] == "j"
    onnx = export_model(run / "last.pt", tmp_path / "m.onnx", "onnx")
    assert onnx.max_abs_diff < 1e-4
    pose = sorted((demo_dir / "clips").iterdir())[0]
    res = runner.invoke(app, ["predict", str(run / "last.pt"), str(pose), "--json"])
    assert res.exit_code == 0, res.output


def test_predict_windows_with_a_graph_model_score_each_window_as_a_clip_of_its_own(keypoint_store, tmp_path):
    """predict --window for a graph checkpoint: the windows cover the clip as for a heatmap model, and each
    window's probabilities are those predict gives the window's frames written as a clip of their own."""
    from fixtures_pose import confidences, moving_poses, write_npz_clip

    run = tmp_path / "run"
    fit(gcn_tiny(keypoint_store, run, epochs=1, stream="b"), log=_quiet)
    kp = moving_poses(2, 30, 17, seed=3)  # (M, T, V, 2): a 30-frame coco17 sequence of two persons
    sc = confidences((2, 30, 17), seed=4)
    size = {"img_h": 480, "img_w": 640}
    long_clip = write_npz_clip(tmp_path / "long.npz", kp, sc, **size)
    out = tmp_path / "windows.json"
    args = ["predict", str(run / "last.pt"), str(long_clip), "--window", "12", "--stride", "7"]
    res = runner.invoke(app, [*args, "--clips", "2", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    (clip,) = json.loads(out.read_text())["clips"]
    assert clip["n_frames"] == 30
    rows = clip["windows"]
    # starts every 7 frames, the last moved back to end at frame 30
    assert [(w["start_frame"], w["end_frame"]) for w in rows] == [(0, 12), (7, 19), (14, 26), (18, 30)]
    probs = np.array([w["probabilities"] for w in rows])  # (4, K)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert not np.allclose(probs[0], probs[1])  # the windows differ: each is scored on its own frames
    for w, row in zip(rows, probs, strict=True):
        s, e = w["start_frame"], w["end_frame"]
        part = write_npz_clip(tmp_path / f"w{s}.npz", kp[:, s:e], sc[:, s:e], **size)
        k = str(len(clip["classes"]))
        one = runner.invoke(app, ["predict", str(run / "last.pt"), str(part), "--clips", "2", "--device", "cpu",
                                  "--top-k", k, "--json"])  # fmt: skip
        assert one.exit_code == 0, one.output
        (pred,) = json.loads(one.stdout)["clips"]
        got = {t["label"]: t["probability"] for t in pred["top"]}
        np.testing.assert_allclose([got[name] for name in clip["classes"]], row, atol=1e-6)


def test_predict_a_pose_file_with_a_graph_model_as_evaluate_reads_the_store(
    keypoint_store, demo_dir, tmp_path
):
    from train.deploy.predict import predict_file

    run = tmp_path / "run"
    fit(gcn_tiny(keypoint_store, run, epochs=1, stream="bm"), log=_quiet)
    labels = demo_dir / "clips.csv"
    preds = predict_file(run / "last.pt", demo_dir / "clips", top_k=3, clips=2, device="cpu", labels=labels)
    assert len(preds) == 32  # the demo: 8 actions x 2 subjects x 2 reps
    assert all(len(p.top) == 3 for p in preds)
    assert all(sum(prob for _, prob in p.top) <= 1 + 1e-6 for p in preds)
    assert sum(p.true_label is not None for p in preds) == len(preds)
    # the views of a pose file are those evaluate reads from the store for the same clip
    from etl.pose.skeleton import get_layout
    from train.deploy.predict import read_clips
    from train.sources.coordinates import pose_views

    src = CoordinateSource.open(keypoint_store, coordinates={"stream": "bm"})
    record = load_checkpoint(run / "last.pt")["coordinates"]
    first = sorted((demo_dir / "clips").iterdir())[0]
    clip = next(read_clips(first, "auto", get_layout("coco17"), labels))  # the manifest gives the image size
    row = src.table.index[src.table["clip_id"] == clip.clip_id]
    stored, _ = src.dataset(src.table.loc[row], clip_len=12, train=False, num_clips=2)[0]
    views = pose_views(clip.keypoints, clip.scores, (clip.img_h, clip.img_w), record, src.layout, 12, 2)
    np.testing.assert_allclose(views, stored.numpy(), atol=1e-6)


def test_convert_an_stgcnpp_checkpoint_then_evaluate_it(keypoint_store, tmp_path):
    """An ST-GCN++ state dict in MMAction2's names (what PYSKL/MMAction2 save) is recognised by its keys and
    written as an actrec checkpoint that evaluate scores with the same logits as the source model."""
    from etl.stores.keypoint_store import KeypointStore
    from train.models import build_model

    classes = KeypointStore.open(keypoint_store).classes
    model, _ = build_model("stgcnpp", "tiny", 3, len(classes), layout="coco17")
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "zoo.pth"
    )
    (tmp_path / "classes.txt").write_text("\n".join(classes) + "\n")
    ckpt = tmp_path / "converted.pt"
    args = ["convert", str(tmp_path / "zoo.pth"), "--from", "pyskl", "--layout", "coco17", "--stream", "jm"]
    res = runner.invoke(app, [*args, "--classes", str(tmp_path / "classes.txt"), "--out", str(ckpt)])
    assert res.exit_code == 0, res.output
    assert "stgcnpp" in res.output
    loaded = load_model(ckpt)
    assert loaded.checkpoint["coordinates"]["stream"] == "jm"
    assert loaded.clip_len == 100
    x = torch.randn(2, 2, 20, 17, 3)
    model.eval()
    torch.testing.assert_close(loaded.model(x), model(x))
    out = tmp_path / "eval.json"
    ev = [
        "evaluate",
        str(ckpt),
        str(keypoint_store),
        "--source",
        "coordinates",
        "--clips",
        "2",
        "--workers",
        "0",
    ]
    res = runner.invoke(app, [*ev, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["model"] == "stgcnpp"


def test_init_from_a_graph_checkpoint_or_an_stgcnpp_state(keypoint_store, tmp_path):
    from train.models import build_model

    fit(gcn_tiny(keypoint_store, tmp_path / "a", epochs=1), log=_quiet)
    lines = []
    fit(
        gcn_tiny(keypoint_store, tmp_path / "b", epochs=1, init_from=str(tmp_path / "a" / "last.pt")),
        log=lines.append,
    )
    record = load_checkpoint(tmp_path / "b" / "last.pt")["init_from"]
    assert record["kind"] == "actrec"
    assert record["loaded"] > 0
    model, _ = build_model("stgcnpp", "tiny", 3, 60, layout="coco17")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "zoo.pth")
    fit(gcn_tiny(keypoint_store, tmp_path / "c", epochs=1, init_from=str(tmp_path / "zoo.pth")), log=_quiet)
    record = load_checkpoint(tmp_path / "c" / "last.pt")["init_from"]
    assert record["kind"] == "mmaction2/pyskl"
    assert any("cls_head.fc.weight" in r for r in record["reinitialised"])  # 60 -> the store's classes
    res = runner.invoke(
        app,
        ["fit", str(keypoint_store), "--source", "coordinates", "--model", "ctrgcn", "--preset", "tiny",
         "--init-from", str(tmp_path / "zoo.pth"), "--workers", "0", "--out", str(tmp_path / "d")],
    )  # fmt: skip
    assert res.exit_code == 1
    assert "no place in ctrgcn" in res.output


def test_3d_path_reads_the_store_3d_call_and_centres_on_the_centre_joint(keypoint_store, monkeypatch):
    """Against the call the 3D store will offer (KeypointStore.read_range(lo, hi, coords="3d"): (M, T, V, 3) +
    scores), stood in for here by the 2D keypoints with z = 2: x, y, z channels, no score, PreNormalize3D's
    centring on the layout's centre joint of the first person's first frame; scaling/rotation in 3D."""
    from etl.stores.keypoint_store import KeypointStore

    two_d = KeypointStore.read_range

    def read_range(self, lo, hi, coords="2d"):
        assert coords == "3d"
        return [
            (np.concatenate([kp, np.full_like(kp[..., :1], 2.0)], -1), sc) for kp, sc in two_d(self, lo, hi)
        ]

    monkeypatch.setattr(KeypointStore, "read_range", read_range)
    src = CoordinateSource.open(keypoint_store, coordinates={"coords": "3d", "strong_augment": True})
    assert src.channels == ["x", "y", "z"]
    x = src.features(0, None)
    assert x.shape[-1] == 3
    np.testing.assert_allclose(x[0, 0, src.center], 0)
    np.testing.assert_allclose(x[..., 2], 0)  # z - z_centre: the constant depth cancels
    item, _ = src.dataset(src.table.iloc[:2], clip_len=10, train=True, seed=0)[(0, 1)]
    assert item.shape == (NUM_PERSON, 10, len(src.layout.joints), 3)
    assert item[..., 2].abs().max() > 0  # the random 3D rotation mixes depth into x, y, z
