"""Published weights in, deployable model out: convert (MMAction2/PYSKL key styles), fit --init-from (conv1
adaptation, head re-initialisation, frozen backbone), export parity (TorchScript, ONNX) and windowed predict."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from etl.common.errors import ActrecError
from train.checkpoint import load_checkpoint, load_model, render_settings
from train.cli import app
from train.deploy.convert import sha256_file
from train.deploy.pretrained import adapt_input_conv, init_from
from train.models import build_model
from train.models.resnet import ResNet

runner = CliRunner()


# --------------------------------------------------------------------------------------- MMAction2 key layout


def to_mmaction2(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our c3d names -> the names MMAction2/PYSKL save (ConvModule: .conv/.bn; I3DHead: cls_head.fc_cls),
    written out independently of train/deploy/convert.py."""
    out = {}
    for key, value in state.items():
        new = key
        new = re.sub(r"^backbone\.conv1\.weight$", "backbone.conv1.conv.weight", new)
        new = re.sub(r"^backbone\.bn1\.", "backbone.conv1.bn.", new)
        new = re.sub(r"\.conv(\d)\.weight$", r".conv\1.conv.weight", new) if ".layer" in new else new
        new = re.sub(r"\.bn(\d)\.", r".conv\1.bn.", new) if ".layer" in new else new
        new = new.replace(".downsample.0.", ".downsample.conv.").replace(".downsample.1.", ".downsample.bn.")
        new = new.replace("head.fc.", "cls_head.fc_cls.")
        out[new] = value
    return out


POSEC3D_CFG = """
model = dict(type='Recognizer3D', backbone=dict(type='ResNet3dSlowOnly', in_channels=17, base_channels=32))
train_pipeline = [
    dict(type='UniformSampleFrames', clip_len=40),
    dict(type='Resize', scale=(56, 56), keep_ratio=False),
    dict(type='GeneratePoseTarget', sigma=0.7, use_score=True, with_kp=True, with_limb=False),
]
test_pipeline = [
    dict(type='UniformSampleFrames', clip_len=40, num_clips=10, test_mode=True),
    dict(type='Resize', scale=(-1, 64)),
    dict(type='CenterCrop', crop_size=60),
    dict(type='GeneratePoseTarget', sigma=0.7, use_score=True, with_kp=True, with_limb=False),
]
"""


@pytest.fixture(scope="module")
def posec3d_full(tmp_path_factory):
    """Our c3d --preset full (17 joints, 60 classes, random BN statistics) and its MMAction2 1.x file."""
    torch.manual_seed(0)
    model, _ = build_model("c3d", "full", 17, 60)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):  # non-trivial statistics and affine terms
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    model.eval()
    tmp = tmp_path_factory.mktemp("zoo")
    mm = to_mmaction2(model.state_dict())
    path = tmp / "slowonly_r50_joint.pth"
    torch.save({"meta": {"cfg": POSEC3D_CFG, "epoch": 24}, "state_dict": mm}, path)
    return model, mm, path


def test_mmaction2_names_are_the_documented_ones(posec3d_full):
    _, mm, _ = posec3d_full
    assert len(mm) == 260
    for key in (
        "backbone.conv1.conv.weight",
        "backbone.conv1.bn.running_var",
        "backbone.layer1.0.conv1.conv.weight",
        "backbone.layer2.3.conv3.bn.num_batches_tracked",
        "backbone.layer3.0.downsample.conv.weight",
        "backbone.layer3.0.downsample.bn.bias",
        "cls_head.fc_cls.weight",
    ):
        assert key in mm, key
    assert tuple(mm["backbone.conv1.conv.weight"].shape) == (32, 17, 1, 7, 7)
    assert tuple(mm["backbone.layer2.0.conv1.conv.weight"].shape) == (64, 128, 3, 1, 1)  # inflated stage
    assert tuple(mm["cls_head.fc_cls.weight"].shape) == (60, 512)


@pytest.mark.slow
def test_converted_weights_give_the_logits_of_the_same_tensors_loaded_directly(
    posec3d_full, demo_dir, tmp_path
):
    model, _, src = posec3d_full
    out = tmp_path / "ntu60_joint.pt"
    result = runner.invoke(
        app, ["convert", str(src), "--from", "mmaction2", "--layout", "coco17", "--channels", "joints",
              "--classes", "60", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "sigma 0.7 (checkpoint config)" in result.output
    assert "size 60 (checkpoint config)" in result.output
    loaded = load_model(out)
    assert loaded.model_name == "c3d"
    assert loaded.clip_len == 40
    assert len(loaded.classes) == 60
    assert loaded.render["sigma"] == 0.7
    assert loaded.render["size"] == 60
    assert loaded.checkpoint["converted_from"]["sha256"] == sha256_file(src)
    x = torch.rand(2, 17, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    clip = sorted((demo_dir / "clips").glob("*.json"))[0]  # predict accepts it (COCO-17 joints at 60 px)
    result = runner.invoke(app, ["predict", str(out), str(clip), "--clips", "1", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    assert clip.stem in result.output
    assert "class_" in result.output


def test_pyskl_bare_dict_with_ddp_prefix_converts_too(posec3d_full, tmp_path):
    model, mm, _ = posec3d_full
    src = tmp_path / "pyskl.pth"
    torch.save({f"module.{k}": v for k, v in mm.items()}, src)
    names = tmp_path / "labels.txt"
    names.write_text("".join(f"action {i}\n" for i in range(60)))
    out = tmp_path / "converted.pt"
    result = runner.invoke(
        app,
        [
            "convert",
            str(src),
            "--from",
            "pyskl",
            "--classes",
            str(names),
            "--sigma",
            "0.6",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    loaded = load_model(out)
    assert loaded.classes[3] == "action 3"
    assert loaded.render["size"] == 64
    assert loaded.clip_len == 48
    x = torch.rand(1, 17, 6, 24, 24)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


def test_convert_names_unknown_and_missing_keys(posec3d_full, tmp_path):
    _, mm, _ = posec3d_full
    cases = {
        "unknown": ({**mm, "backbone.fancy.weight": torch.zeros(1)}, "backbone.fancy.weight"),
        "missing": (
            {k: v for k, v in mm.items() if k != "backbone.layer1.0.conv2.bn.running_mean"},
            "backbone.layer1.0.bn2.running_mean",
        ),
        "classes": (mm, "--classes gives 59 names"),
    }
    for name, (state, phrase) in cases.items():
        src = tmp_path / f"{name}.pth"
        torch.save({"state_dict": state}, src)
        n = "59" if name == "classes" else "60"
        result = runner.invoke(
            app, ["convert", str(src), "--from", "mmaction2", "--classes", n, "--out", str(tmp_path / "x.pt")]
        )
        assert result.exit_code == 1, (name, result.output)
        assert phrase in result.output, (name, result.output)
        assert len(result.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------- conv1 adaptation


@pytest.mark.parametrize("channels", [1, 3, 17, 34])
def test_conv1_adaptation_preserves_the_response_to_a_uniform_input(channels):
    g = torch.Generator().manual_seed(0)
    rgb = torch.randn(8, 3, 7, 7, generator=g)
    adapted = adapt_input_conv(rgb, channels)
    assert adapted.shape == (8, channels, 7, 7)
    for value in (0.3, 1.0):
        before = F.conv2d(torch.full((1, 3, 9, 9), value), rgb)
        after = F.conv2d(torch.full((1, channels, 9, 9), value), adapted)
        torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    # a 3D stem (c3d: (O, I, 1, 7, 7)) the same way
    stem = torch.randn(4, 17, 1, 7, 7, generator=g)
    wide = adapt_input_conv(stem, 34)
    u17, u34 = torch.ones(1, 17, 1, 9, 9), torch.ones(1, 34, 1, 9, 9)
    torch.testing.assert_close(F.conv3d(u34, wide), F.conv3d(u17, stem), rtol=1e-5, atol=1e-5)


def test_torchvision_resnet_initialises_the_lstm_encoder(tmp_path):
    torch.manual_seed(0)
    resnet = ResNet(depth=18, in_channels=3, num_classes=1000, width=8)  # torchvision's names and layout
    src = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), src)
    model, _ = build_model("cnn_lstm_attn", "tiny", 17, 5)
    lstm_before = model.lstm.weight_hh_l0.detach().clone()
    report = init_from(model, "cnn_lstm_attn", src)
    assert report.kind == "torchvision"
    assert report.dropped == ["fc.bias", "fc.weight"]
    assert report.adapted == ["encoder.conv1.weight 3 -> 17 channels"]
    assert torch.equal(model.encoder.layer2[0].conv1.weight, resnet.layer2[0].conv1.weight)
    assert torch.equal(model.encoder.bn1.running_var, resnet.bn1.running_var)
    assert torch.equal(model.encoder.conv1.weight, adapt_input_conv(resnet.conv1.weight, 17))
    assert torch.equal(model.lstm.weight_hh_l0, lstm_before)  # not in the source: left alone
    assert {k.split(".")[0] for k in report.kept_init} == {"lstm", "attention", "head"}
    with pytest.raises(ActrecError, match="not c3d"):
        init_from(build_model("c3d", "tiny", 17, 5)[0], "c3d", src)
    wide = ResNet(depth=18, in_channels=3, num_classes=1000, width=16)
    torch.save(wide.state_dict(), src)
    with pytest.raises(ActrecError, match="do not fit cnn_lstm_attn"):
        init_from(model, "cnn_lstm_attn", src)


@pytest.mark.slow
def test_fit_init_from_a_raw_posec3d_file_adapts_reinitialises_and_freezes(heatmap_store, tmp_path):
    """A 17-joint, 60-class zoo-style file -> our 34-channel, 8-class tiny store: conv1 adapted, head
    re-initialised, the backbone frozen for the one epoch (weights and BN statistics unchanged)."""
    from train.fit import FitConfig, fit

    torch.manual_seed(3)
    source, _ = build_model("c3d", "tiny", 17, 60)
    src = tmp_path / "zoo_tiny.pth"
    torch.save({"state_dict": to_mmaction2(source.state_dict())}, src)
    lines: list[str] = []
    cfg = FitConfig(
        store=str(heatmap_store), out=str(tmp_path / "run"), model="c3d", preset="tiny", epochs=1, clip_len=8,
        batch_size=4, lr=1e-2, workers=0, seed=1, init_from=str(src), freeze_backbone_epochs=1,
        backbone_lr_scale=0.1,
    )  # fmt: skip
    fit(cfg, log=lines.append)
    text = "\n".join(lines)
    assert "mmaction2/pyskl" in text
    assert "backbone.conv1.weight 17 -> 34 channels" in text
    assert "re-initialised the classifier (head.fc.weight 60 -> 8 classes" in text
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["init_from"]["sha256"] == sha256_file(src)
    weights, src_state = ckpt["model"], source.state_dict()
    for key, value in weights.items():
        if key.startswith("backbone.") and key != "backbone.conv1.weight":
            assert torch.equal(value, src_state[key]), key  # frozen: weights and running statistics
    assert torch.equal(
        weights["backbone.conv1.weight"], adapt_input_conv(src_state["backbone.conv1.weight"], 34)
    )
    assert weights["head.fc.weight"].shape == (8, 128)
    assert not torch.equal(weights["head.fc.weight"], src_state["head.fc.weight"][:8])
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == 0.0  # the frozen backbone's group


# --------------------------------------------------------------------------------------- export


def _checkpoint(model_name: str, path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model, config = build_model(model_name, "tiny", 17, 4)
    torch.save(
        {
            "model_name": model_name,
            "model_config": asdict(config),
            "model": model.state_dict(),
            "classes": ["w", "x", "y", "z"],
            "render": render_settings("coco17", "joints", size=32, sigma=0.6),
            "fit_config": {"clip_len": 8},
        },
        path,
    )
    return path


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            raise  # CI installs the `export` extra: ONNX export is tested there, never skipped
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("model_name", ["c3d", "cnn_lstm", "cnn_lstm_attn"])
def test_exported_model_gives_the_pytorch_logits(model_name, fmt, tmp_path):
    if fmt == "onnx" and not _onnx_available():
        pytest.skip("onnx/onnxruntime not installed (pip install 'actrec[export]')")
    from train.deploy.export import read_onnx_metadata, read_torchscript_metadata, run_onnx, run_torchscript

    ckpt = _checkpoint(model_name, tmp_path / "m.pt")
    out = tmp_path / f"model.{'onnx' if fmt == 'onnx' else 'ts'}"
    result = runner.invoke(app, ["export", str(ckpt), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    model = load_model(ckpt).model
    x = torch.rand(3, 17, 12, 32, 32, generator=torch.Generator().manual_seed(5))  # other B and T than traced
    with torch.no_grad():
        expected = model(x)
    got = run_onnx(out, x) if fmt == "onnx" else run_torchscript(out, x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    meta = read_onnx_metadata(out) if fmt == "onnx" else read_torchscript_metadata(out)
    assert meta["classes"] == ["w", "x", "y", "z"]
    assert meta["input"]["shape"] == [
        "batch",
        17,
        "frames",
        32,
        32,
    ]
    assert json.loads(out.with_name(out.name + ".json").read_text()) == meta


# --------------------------------------------------------------------------------------- windowed predict


def _concatenate(first: Path, second: Path, out: Path) -> int:
    """COCO keypoint results of two clips one after the other; returns the frame where the second begins."""
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    lo, hi = min(d["image_id"] for d in a), max(d["image_id"] for d in a)
    offset = hi + 1 - min(d["image_id"] for d in b)
    out.write_text(json.dumps(a + [{**d, "image_id": d["image_id"] + offset} for d in b]))
    return hi + 1 - lo  # frames are counted from the first detected one


@pytest.mark.slow
def test_windowed_predict_labels_both_halves_of_two_concatenated_clips(demo_dir, tmp_path):
    from etl.heatmaps.clip import render_clip
    from etl.heatmaps.spec import RenderSpec
    from etl.pose.skeleton import get_layout
    from train.deploy.predict import read_clips
    from train.sources.sampling import sample_test, sample_train
    from train.sources.views import hflip

    actions = ["wave", "walk"]
    files = [demo_dir / "clips" / f"s01_{a}_r1.json" for a in actions]
    window, clip_len = 16, 8
    render = render_settings("coco17", "joints", size=32, sigma=0.6)
    layout, params = get_layout("coco17"), RenderSpec.from_checkpoint(render)

    # Every window of each clip, rendered as predict renders windows: (N, W, C, S, S) per action.
    windows = []
    for f in files:
        clip = next(read_clips(f, "coco-json", layout))
        w = [
            render_clip(
                clip.keypoints[:, s : s + window],
                clip.scores[:, s : s + window],
                (clip.img_h, clip.img_w),
                params,
                layout,
            )[0]
            for s in range(clip.n_frames - window + 1)
        ]
        windows.append(np.stack(w))
    torch.manual_seed(0)
    # a c3d smaller than `tiny` (strided stem and pool): the CPU cost is the training below
    model, config = build_model("c3d", "tiny", 17, 2, base_channels=4, conv1_stride=2, pool1_stride=2)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.momentum = 0.5  # running statistics catch up within a few steps (not saved in the checkpoint)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    rng = np.random.RandomState(0)
    flip = render["flip_permutation"]

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for label, w in enumerate(windows):
            for i in rng.randint(0, len(w), n):
                xs.append(w[i][sample_train(window, clip_len, rng)])
                ys.append(label)
        x = torch.from_numpy(np.stack(xs)).permute(0, 2, 1, 3, 4).float() / 255  # (B, C, T, S, S)
        mirror = torch.from_numpy(rng.rand(len(x)) < 0.5)
        x[mirror] = hflip(x[mirror], flip)  # predict averages each view with its mirror image
        return x, torch.tensor(ys)

    @torch.no_grad()
    def fits_every_window() -> bool:
        model.eval()
        ok = True
        for label, w in enumerate(windows):
            x = (
                torch.from_numpy(w[:, sample_test(window, clip_len, 1)[0]]).permute(0, 2, 1, 3, 4).float()
                / 255
            )
            p = (model(x).softmax(1) + model(hflip(x, flip)).softmax(1)) / 2
            ok &= bool((p[:, label] > 0.9).all())
        model.train()
        return ok

    for step in range(1, 81):  # overfit the two clips, until every window of each is labelled right
        x, y = batch(4)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 5 == 0 and fits_every_window():
            break
    assert fits_every_window(), "the tiny model did not learn the two clips"
    ckpt = tmp_path / "two.pt"
    torch.save(
        {"model_name": "c3d", "model_config": asdict(config), "model": model.state_dict(), "classes": actions,
         "render": render, "fit_config": {"clip_len": clip_len}},
        ckpt,
    )  # fmt: skip

    long = tmp_path / "long.json"
    boundary = _concatenate(*files, long)
    out = tmp_path / "windows.csv"
    result = runner.invoke(
        app, ["predict", str(ckpt), str(long), "--format", "coco-json", "--window", str(window), "--stride", "4",
              "--top-k", "2", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    import pandas as pd

    rows = pd.read_csv(out)
    assert list(rows.columns[:7]) == [
        "clip_id",
        "start_frame",
        "end_frame",
        "label_1",
        "prob_1",
        "label_2",
        "prob_2",
    ]
    n_long = next(read_clips(long, "coco-json", layout)).n_frames
    assert n_long == boundary + len(windows[1]) + window - 1
    assert rows.start_frame.iloc[0] == 0
    assert rows.end_frame.iloc[-1] == n_long
    first = rows[rows.end_frame <= boundary]
    second = rows[rows.start_frame >= boundary]
    assert len(first) >= 3
    assert len(second) >= 3
    assert (first.label_1 == "wave").all(), first[["start_frame", "label_1", "prob_1"]]
    assert (second.label_1 == "walk").all(), second[["start_frame", "label_1", "prob_1"]]
    np.testing.assert_allclose(rows[["p_wave", "p_walk"]].sum(axis=1), 1.0, atol=1e-5)
    assert (tmp_path / "windows.png").stat().st_size > 1000  # the timeline

    as_json = tmp_path / "windows.json"
    result = runner.invoke(
        app,
        ["predict", str(ckpt), str(long), "--window", str(window), "--stride", "4", "--out", str(as_json)],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(as_json.read_text())
    ws = doc["clips"][0]["windows"]
    assert [w["start_frame"] for w in ws] == rows.start_frame.tolist()
    assert ws[0]["top"][0]["label"] == "wave"
    assert ws[-1]["top"][0]["label"] == "walk"


def test_window_starts_cover_every_frame():
    from train.deploy.windows import window_starts

    assert window_starts(10, 16, 4) == [0]
    assert window_starts(40, 16, 8) == [0, 8, 16, 24]
    assert window_starts(43, 16, 8) == [0, 8, 16, 24, 27]


def test_evaluate_accepts_a_converted_checkpoint(keypoint_store, tmp_path):
    from etl.commands.render import render
    from etl.heatmaps.spec import RenderSpec
    from etl.stores.heatmap_store import HeatmapStore

    store = tmp_path / "joints.zarr"
    render(keypoint_store, store, RenderSpec(channels="joints", size=32))
    classes = HeatmapStore.open(store).classes
    names = tmp_path / "labels.txt"
    names.write_text("\n".join(classes) + "\n")
    torch.manual_seed(0)
    model, _ = build_model("c3d", "tiny", 17, len(classes))  # a small PoseC3D-shaped network
    src = tmp_path / "zoo.pth"
    torch.save({"state_dict": to_mmaction2(model.state_dict())}, src)
    out = tmp_path / "converted.pt"
    args = [
        "convert",
        str(src),
        "--from",
        "mmaction2",
        "--classes",
        str(names),
        "--size",
        "32",
        "--clip-len",
        "8",
    ]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = tmp_path / "eval.json"
    result = runner.invoke(
        app, ["evaluate", str(out), str(store), "--clips", "2", "--workers", "0", "--out", str(metrics)]
    )
    assert result.exit_code == 0, result.output
    m = json.loads(metrics.read_text())
    assert m["checkpoint_epoch"] == 0
    assert m["clip_len"] == 8
    cm = np.asarray(m["confusion_matrix"])  # (K, K): the predictions the scores were computed from
    assert m["top1"] == pytest.approx(np.trace(cm) / cm.sum())
    assert m["n_clips"] == cm.sum()
