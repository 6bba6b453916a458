"""Training as PoseC3D trains (`--source keypoints`): coordinate-space augmentation against the anchor, crop
statistics against MMAction2's RandomResizedCrop, the torch renderer against the numba kernels, determinism
across worker counts, exact resume with workers, and fit/evaluate from both sources on tiny configs (the CPU
path of bench/gpu_check.sh)."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_train import tiny
from typer.testing import CliRunner

from etl.heatmaps.kernels import render_heatmaps
from etl.heatmaps.spec import RenderSpec
from etl.pose.skeleton import COCO17
from etl.stores.heatmap_store import HeatmapStore
from train.checkpoint import load_checkpoint
from train.cli import app
from train.fit import FitConfig, fit
from train.sources.heatmap_augment import crop_boxes
from train.sources.heatmaps import HeatmapClips
from train.sources.keypoint_augment import draw_crop_box, train_geometry
from train.sources.keypoints import KeypointClips, KeypointSource, collate_keypoints
from train.sources.loading import EpochSampler, make_loader
from train.sources.render_torch import quantize_like, render_torch

runner = CliRunner()
LIMBS = np.array(COCO17.limbs)


def _quiet(*_):
    pass


def kp_tiny(kp_store: Path, out: Path, **kw) -> FitConfig:
    """The keypoint source with the render settings of the `heatmap_store` fixture (32 px)."""
    return tiny(kp_store, out, source="keypoints", size=32, **kw)


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------- geometry vs the anchor


@pytest.mark.shared
@pytest.mark.parametrize("key", ["s0", "s1", "s2", "s3"])
def test_train_geometry_reproduces_the_anchor_bit_for_bit(anchor_dump, key):
    """Given the anchor's sampled frames, crop box and flip, our coordinate pipeline gives exactly its
    GeneratePoseTarget input (keypoints and reordered scores), for every keypoint without a 0 coordinate
    (MMAction2 treats 0 as missing: see tests/test_compact.py), and the rendered train heatmaps match."""
    inds = anchor_dump[f"{key}_train_frame_inds"]
    kp = anchor_dump[f"{key}_raw_keypoint"][:, inds]
    sc = anchor_dump[f"{key}_raw_keypoint_score"][:, inds]
    hw = tuple(int(v) for v in anchor_dump[f"{key}_raw_img_shape"])
    flip = bool(anchor_dump[f"{key}_train_flip"])
    crop = tuple(int(v) for v in anchor_dump[f"{key}_train_crop_bbox"])
    out, out_sc, info = train_geometry(
        kp,
        sc,
        hw,
        size=64,
        out_size=56,
        crop=crop,
        flip=flip,
        joint_flip=COCO17.joint_flip,
        zero_is_missing=True,
    )
    assert info["image_hw"] == (64, 64)
    ref = anchor_dump[f"{key}_gpt_in_keypoint"]
    clean = (kp != 0).all(axis=-1)
    if flip:
        clean = clean[:, :, list(COCO17.joint_flip)]
    assert clean.mean() > 0.8
    np.testing.assert_array_equal(out[clean], ref[clean])
    np.testing.assert_array_equal(out_sc, anchor_dump[f"{key}_gpt_in_keypoint_score"])
    if clean.all():
        got = render_heatmaps(
            out, out_sc, np.zeros((48, 17, 56, 56), np.float32), with_joints=True, limbs=None
        )
        np.testing.assert_array_equal(got, anchor_dump[f"{key}_train_joint_heatmap_TCHW"])


def test_flip_mirrors_x_as_mmaction_and_swaps_left_right():
    rng = np.random.default_rng(0)
    kp = rng.uniform(100, 900, (2, 5, 17, 2)).astype(np.float32)
    kp[1, 2, 4] = np.nan  # a missing joint stays missing, in its swapped place
    sc = rng.uniform(0.2, 1, (2, 5, 17)).astype(np.float32)
    args = {"size": 64, "out_size": 56, "crop": (3, 5, 50, 60), "joint_flip": COCO17.joint_flip}
    plain, plain_sc, _ = train_geometry(kp, sc, (1080, 1920), flip=False, **args)
    flipped, flipped_sc, _ = train_geometry(kp, sc, (1080, 1920), flip=True, **args)
    perm = list(COCO17.joint_flip)
    assert perm[5] == 6
    assert perm[6] == 5  # left/right shoulders
    np.testing.assert_allclose(flipped[..., 0], 56 - plain[:, :, perm, 0], atol=1e-5)  # x -> W - x
    np.testing.assert_array_equal(flipped[..., 1], plain[:, :, perm, 1])
    np.testing.assert_array_equal(flipped_sc, plain_sc[:, :, perm])
    assert np.isnan(flipped[1, 2, perm[4]]).all()
    assert np.isfinite(flipped[1, 2, 4]).all()


# ------------------------------------------------------------------------------- crop statistics


def mmaction_crop(img_h, img_w, area=(0.56, 1.0), ratio=(3 / 4, 4 / 3), attempts=10):
    """MMAction2's RandomResizedCrop.get_crop_bbox as documented: `attempts` candidates with the area fraction
    uniform in `area` and the aspect ratio log-uniform in `ratio`, sides rounded; the first candidate that fits
    is placed uniformly; if none does, the centred square of the short side."""
    for _ in range(attempts):
        a = random.uniform(*area) * img_h * img_w
        r = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(a * r)), round(math.sqrt(a / r))
        if w <= img_w and h <= img_h:
            x, y = random.randint(0, img_w - w), random.randint(0, img_h - h)
            return x, y, x + w, y + h
    s = min(img_h, img_w)
    return (img_w - s) // 2, (img_h - s) // 2, (img_w - s) // 2 + s, (img_h - s) // 2 + s


def crop_stats(boxes: np.ndarray, img_h: int, img_w: int) -> dict:
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all()
    assert (boxes[:, 2] <= img_w).all()
    assert (boxes[:, 3] <= img_h).all()
    return {
        "area": float((w * h).mean() / (img_h * img_w)),
        "full_side": float(((w == img_w) | (h == img_h)).mean()),  # touches the full width or height
        "x0_mean": float(boxes[:, 0].mean()),
    }


@pytest.mark.parametrize("img_hw", [(64, 64), (64, 114)])
def test_crops_are_redrawn_like_mmaction(img_hw):
    """Both our crop draws (numpy: keypoint source; torch: cached source) have MMAction2's statistics: mean
    area ~0.73 (not 0.78: candidates that do not fit are redrawn) and ~8% touching a full side, where
    clamping gave 0.77 and 30%."""
    h, w = img_hw
    n = 20000
    random.seed(0)
    ref = crop_stats(np.array([mmaction_crop(h, w) for _ in range(n)]), h, w)
    rng = np.random.RandomState(0)
    ours_np = crop_stats(np.array([draw_crop_box(h, w, rng) for _ in range(n)]), h, w)
    ours_t = crop_stats(crop_boxes(n, h, w, generator=torch.Generator().manual_seed(0)).numpy(), h, w)
    if img_hw == (64, 64):
        assert 0.72 < ref["area"] < 0.74
        assert 0.06 < ref["full_side"] < 0.10
    for ours in (ours_np, ours_t):
        assert abs(ours["area"] - ref["area"]) < 0.005, (ours, ref)
        assert abs(ours["full_side"] - ref["full_side"]) < 0.01, (ours, ref)
        assert abs(ours["x0_mean"] - ref["x0_mean"]) < 0.3, (ours, ref)


def test_crop_falls_back_to_the_centred_square():
    """An image so narrow that no candidate fits: MMAction2's fallback, the centred short-side square."""
    rng = np.random.RandomState(0)
    assert draw_crop_box(64, 10, rng) == (0, 27, 10, 37)
    boxes = crop_boxes(5, 64, 10, generator=torch.Generator().manual_seed(0))
    assert boxes.tolist() == [[0, 27, 10, 37]] * 5


# ------------------------------------------------------------------------------- torch renderer parity


def _numba(kp, sc, hw, joints, limbs, **kw):
    c = kp.shape[2] * joints + (0 if limbs is None else len(limbs))
    out = np.zeros((kp.shape[1], c, *hw), np.float32)
    return render_heatmaps(kp, sc, out, with_joints=joints, limbs=limbs, **kw)


def _torch(kp, sc, hw, joints, limbs, **kw):
    out = render_torch(
        torch.from_numpy(kp)[None],
        torch.from_numpy(sc)[None],
        hw,
        with_joints=joints,
        limbs=None if limbs is None else limbs.tolist(),
        **kw,
    )
    return out[0].permute(1, 0, 2, 3).numpy()  # (C, T, H, W) -> (T, C, H, W)


@pytest.mark.shared
@pytest.mark.parametrize("key", ["s0", "s3", "edge"])
@pytest.mark.parametrize(("joints", "limbs"), [(True, None), (False, LIMBS), (True, LIMBS)])
def test_torch_renderer_matches_the_kernels_on_the_anchor_dump(anchor_dump, key, joints, limbs):
    p = f"{key}_gpt_in_"
    kp, sc = anchor_dump[p + "keypoint"], anchor_dump[p + "keypoint_score"]
    hw = tuple(int(v) for v in anchor_dump[p + "img_shape"])
    ref = _numba(kp, sc, hw, joints, limbs)
    got = _torch(kp, sc, hw, joints, limbs)
    assert np.abs(got - ref).max() <= 1e-5
    assert ref.max() > 0.5


@pytest.mark.parametrize(("sigma", "eps", "hw"), [(0.6, 1e-4, (24, 20)), (1.3, 1e-3, (17, 31))])
def test_torch_renderer_matches_the_kernels_on_random_inputs(sigma, eps, hw):
    """Three persons, joints near and past the borders, missing joints (NaN, score 0, NaN score, below eps),
    a zero-length limb."""
    rng = np.random.default_rng(1)
    kp = rng.uniform(-5, 35, (3, 9, 17, 2)).astype(np.float32)
    sc = rng.uniform(0, 1, (3, 9, 17)).astype(np.float32)
    kp[0, 1, 3] = np.nan
    kp[1, 2, 5, 0] = np.nan
    sc[2, 3, 7] = np.nan
    sc[0, 4, 9] = 0
    sc[1, 5, 11] = eps / 2
    kp[2, 6, 6] = kp[2, 6, 0] + 0.3  # limb (0, 6) shorter than 1 px: the joint gaussian at its first end
    for joints, limbs in ((True, None), (False, LIMBS), (True, LIMBS)):
        ref = _numba(kp, sc, hw, joints, limbs, sigma=sigma, eps=eps)
        got = _torch(kp, sc, hw, joints, limbs, sigma=sigma, eps=eps)
        assert np.abs(got - ref).max() <= 1e-5
        assert np.isfinite(got).all()
        assert (ref > 0).mean() > 0.01


def test_torch_renderer_batches_padded_persons_and_quantises_like_the_store():
    rng = np.random.default_rng(2)
    a = (torch.from_numpy(rng.uniform(0, 32, (1, 6, 17, 2)).astype(np.float32)), torch.rand(1, 6, 17))
    b = (torch.from_numpy(rng.uniform(0, 32, (2, 6, 17, 2)).astype(np.float32)), torch.rand(2, 6, 17))
    (kp, sc), labels = collate_keypoints([(a, 3), (b, 5)])
    assert kp.shape == (2, 2, 6, 17, 2)
    assert labels.tolist() == [3, 5]
    assert torch.isnan(kp[0, 1]).all()
    batch = render_torch(kp, sc, (32, 32), with_joints=True, limbs=LIMBS.tolist())
    for i, (k, s) in enumerate((a, b)):
        one = render_torch(k[None], s[None], (32, 32), with_joints=True, limbs=LIMBS.tolist())[0]
        torch.testing.assert_close(batch[i], one, rtol=0, atol=0)
        ref = _numba(k.numpy(), s.numpy(), (32, 32), True, LIMBS)
        u8 = np.zeros_like(ref, np.uint8)
        render_heatmaps(k.numpy(), s.numpy(), u8, with_joints=True, limbs=LIMBS)
        q = quantize_like(batch[i].clone(), "uint8").permute(1, 0, 2, 3).numpy()
        assert (np.abs(q * 255 - u8) <= 1).all()
        assert (q * 255 == u8).mean() > 0.999


# ------------------------------------------------------------------------------- the keypoint dataset


@pytest.fixture(scope="module")
def kp_source(keypoint_store):
    return KeypointSource(keypoint_store, RenderSpec(size=32))


def test_eval_views_from_keypoints_are_the_stored_views(kp_source, heatmap_store):
    hm = HeatmapStore.open(heatmap_store)
    rows, labels = np.arange(len(hm)), hm.table.label.to_numpy()
    ours = KeypointClips(kp_source, rows, labels, clip_len=8, train=False, num_clips=3)
    theirs = HeatmapClips(heatmap_store, rows, labels, clip_len=8, train=False, num_clips=3)
    for i in (0, 5, len(hm) - 1):
        assert torch.equal(ours[(i, 0)][0], theirs[(i, 0)][0])
        assert ours[(i, 0)][1] == theirs[(i, 0)][1]
    plain = KeypointClips(kp_source, rows, labels, clip_len=8, train=True, augment=False, seed=4)
    cached = HeatmapClips(heatmap_store, rows, labels, clip_len=8, train=True, seed=4)
    assert torch.equal(plain[(2, 3)][0], cached[(2, 3)][0])  # same frames drawn, same values


@pytest.mark.parametrize("renderer", ["numba", "torch"])
def test_train_items_depend_on_seed_epoch_clip_only(kp_source, renderer):
    rows = np.arange(len(kp_source))
    ds = KeypointClips(
        kp_source,
        rows,
        kp_source.table.label.to_numpy(),
        clip_len=8,
        train=True,
        input_size=28,
        renderer=renderer,
    )
    a, b, c = ds[(2, 0)][0], ds[(2, 0)][0], ds[(2, 1)][0]
    flat = (lambda x: torch.cat([t.flatten() for t in x])) if renderer == "torch" else (lambda x: x.flatten())
    assert torch.equal(flat(a).nan_to_num(-1), flat(b).nan_to_num(-1))
    assert not torch.equal(flat(a).nan_to_num(-1), flat(c).nan_to_num(-1))
    if renderer == "numba":
        assert a.shape == (1, 8, 34, 28, 28)
        assert a.dtype == torch.uint8
    batches = {}
    for workers in (0, 2):  # forked workers run the numba kernels (tbb layer) after the parent did
        sampler = EpochSampler(len(ds), shuffle=True, seed=1)
        sampler.set_epoch(1)
        loader = make_loader(
            ds, sampler, batch_size=4, workers=workers, device=torch.device("cpu"), collate_fn=ds.collate
        )
        batches[workers] = list(loader)
    for (x0, y0), (x2, y2) in zip(batches[0], batches[2], strict=True):
        assert torch.equal(y0, y2)
        for t0, t2 in zip(
            x0 if renderer == "torch" else [x0], x2 if renderer == "torch" else [x2], strict=True
        ):
            assert torch.equal(t0.nan_to_num(-1), t2.nan_to_num(-1))


# ------------------------------------------------------------------------------- fit and evaluate


@pytest.mark.slow
def test_resume_with_workers_continues_exactly_and_workers_do_not_matter(heatmap_store, tmp_path):
    """The loader has its own seeded generator: 3 epochs straight == 1 epoch, stop, --resume (workers 2), and
    workers 0 == workers 2 (dropout masks no longer depend on when iterators are created)."""
    fit(tiny(heatmap_store, tmp_path / "w2", epochs=3, workers=2), log=_quiet)
    fit(tiny(heatmap_store, tmp_path / "w0", epochs=3, workers=0), log=_quiet)

    class Stop(Exception):
        pass

    def stop_in_epoch_2(line: str) -> None:
        if line.startswith("epoch 2/3"):  # logged before epoch 2's checkpoint: last.pt holds epoch 1
            raise Stop

    run = tmp_path / "resumed"
    with pytest.raises(Stop):
        fit(tiny(heatmap_store, run, epochs=3, workers=2), log=stop_in_epoch_2)
    assert load_checkpoint(run / "last.pt")["epoch"] == 0
    lines = []
    fit(replace(tiny(heatmap_store, run, epochs=3, workers=2), resume=True), log=lines.append)
    assert any("resuming" in line for line in lines)
    ref = _weights(tmp_path / "w2" / "last.pt")
    assert load_checkpoint(tmp_path / "w2" / "last.pt")["model_config"]["dropout"] > 0  # dropout is exercised
    assert _same(ref, _weights(run / "last.pt"))
    assert _same(ref, _weights(tmp_path / "w0" / "last.pt"))


@pytest.mark.slow
def test_keypoints_without_augment_train_exactly_like_the_cache(keypoint_store, heatmap_store, tmp_path):
    """Same frames, same stored values: --source keypoints --no-augment learns bit for bit what --source
    heatmaps --no-augment learns, and both record their source and render settings."""
    fit(tiny(heatmap_store, tmp_path / "hm", augment=False), log=_quiet)
    fit(kp_tiny(keypoint_store, tmp_path / "kp", augment=False, renderer="numba"), log=_quiet)
    assert _same(_weights(tmp_path / "hm" / "last.pt"), _weights(tmp_path / "kp" / "last.pt"))
    hm, kp = load_checkpoint(tmp_path / "hm" / "last.pt"), load_checkpoint(tmp_path / "kp" / "last.pt")
    assert (hm["source"], kp["source"]) == ("heatmaps", "keypoints")
    for key in ("channels", "size", "sigma", "padding", "eps", "dtype", "flip_permutation"):
        assert hm["render"][key] == kp["render"][key], key
    assert kp["fit_config"]["source"] == "keypoints"
    assert kp["fit_config"]["size"] == 32


@pytest.mark.slow
@pytest.mark.parametrize("renderer", ["numba", "torch"])
def test_fit_from_keypoints_then_evaluate_from_either_store(
    renderer, keypoint_store, heatmap_store, tmp_path
):
    """The CPU path of bench/gpu_check.sh: augmented training from keypoints (attention model: the attention
    plot reads validation views), data-wait share logged; evaluation from the heatmap store and from the
    keypoint store agree exactly; a store rendered with another sigma is refused."""
    run = tmp_path / renderer
    lines = []
    result = fit(
        kp_tiny(
            keypoint_store, run, model="cnn_lstm_attn", epochs=1, input_size=28, workers=2, renderer=renderer
        ),
        log=lines.append,
    )
    assert any(f"({renderer} renderer)" in line for line in lines)
    assert any("waiting for data" in line for line in lines)
    assert 0 <= result["data_wait_share"] < 1
    assert result["peak_gpu_mem_gb"] == 0.0
    assert (run / "plots" / "attention.png").exists()
    evals = {}
    for source, store in (("heatmaps", heatmap_store), ("keypoints", keypoint_store)):
        out = tmp_path / f"{renderer}-{source}.json"
        args = [
            "evaluate",
            str(run / "last.pt"),
            str(store),
            "--clips",
            "2",
            "--workers",
            "0",
            "--out",
            str(out),
        ]
        res = runner.invoke(app, [*args, "--source", source])
        assert res.exit_code == 0, res.output
        evals[source] = json.loads(out.read_text())
    for key in ("top1", "top5", "mean_class_acc", "loss", "confusion_matrix"):
        assert evals["heatmaps"][key] == evals["keypoints"][key], key


def test_evaluate_refuses_a_heatmap_store_with_another_sigma(keypoint_store, tmp_path):
    from etl.commands.render import render

    fit(kp_tiny(keypoint_store, tmp_path / "run", epochs=1), log=_quiet)
    other = tmp_path / "sigma1.zarr"
    render(keypoint_store, other, RenderSpec(size=32, sigma=1.0))
    res = runner.invoke(app, ["evaluate", str(tmp_path / "run" / "last.pt"), str(other), "--workers", "0"])
    assert res.exit_code == 1
    assert "does not match" in res.output
    assert "sigma 0.6" in res.output


@pytest.mark.slow
def test_cli_fit_from_keypoints_takes_the_render_options(keypoint_store, tmp_path):
    run = tmp_path / "cli"
    args = ["fit", str(keypoint_store), "--source", "keypoints", "--size", "24", "--sigma", "0.8"]
    args += ["--channels", "joints", "--model", "c3d", "--preset", "tiny", "--epochs", "1", "--clip-len", "6"]
    args += ["--batch-size", "4", "--workers", "0", "--out", str(run)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["render"]["size"] == 24
    assert ckpt["render"]["sigma"] == 0.8
    assert len(ckpt["render"]["channels"]) == 17
    assert ckpt["model_config"]["in_channels"] == 17
    bad = runner.invoke(app, [*args, "--source", "poses"])
    assert bad.exit_code == 1
    assert "--source must be one of heatmaps, keypoints" in bad.output
    wrong = runner.invoke(app, ["fit", str(keypoint_store), "--out", str(tmp_path / "y"), "--workers", "0"])
    assert wrong.exit_code == 1
    assert "expected actrec.heatmaps" in wrong.output


def _source_kind_branches(tree) -> list[str]:
    """Places that ask which training source they hold: isinstance against a source class, or a comparison
    with a `--source` name."""
    import ast

    from train.sources import SOURCES

    classes = {cls.__name__ for cls in SOURCES.values()} | {"HeatmapStore"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
            named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            named |= {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
            if named & classes:
                found.append(ast.unparse(node))
        if isinstance(node, ast.Compare):
            names = {c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)}
            if names & set(SOURCES):
                found.append(ast.unparse(node))
    return found


def test_fit_evaluation_and_predict_never_branch_on_the_source_kind():
    """A new kind of training input (e.g. coordinates for graph networks) is a class in train/sources/ and one
    line in SOURCES: fit, evaluation and predict only call the TrainingSource protocol."""
    import ast

    import train

    root = Path(train.__file__).parent
    for module in ("fit.py", "deploy/evaluation.py", "deploy/predict.py"):
        assert _source_kind_branches(ast.parse((root / module).read_text())) == [], module
    caught = 'isinstance(store, KeypointSource)\nif source == "keypoints": pass\n'
    assert len(_source_kind_branches(ast.parse(caught))) == 2


def test_the_sources_registry_is_the_one_the_cli_offers():
    from train.config import SOURCES as NAMES
    from train.sources import SOURCES

    assert tuple(SOURCES) == NAMES
    assert all(cls.name == name for name, cls in SOURCES.items())
