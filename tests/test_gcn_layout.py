"""Graph networks on a layout that is not built in (issue #24): a keypoint store ingested with a layout YAML carries
the layout's definition; stgcnpp and ctrgcn build their graph from it, and fit, resume, evaluate, predict (whole
clips and --window) and export work on it through the CLI. Built-in layouts keep their checkpoint bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_pose import confidences, moving_poses, write_npz_clip
from typer.testing import CliRunner

from etl.cli import app as etl_app
from etl.stores.keypoint_store import KeypointStore
from train.checkpoint import load_checkpoint, load_model, save_checkpoint
from train.cli import app

runner = CliRunner()

# a 5-joint star: four limbs hang on the head, which roots the graph
STAR5 = """name: star5
joints: [head, left_hand, right_hand, left_foot, right_foot]
limbs:
  - [head, left_hand]
  - [head, right_hand]
  - [head, left_foot]
  - [head, right_foot]
center: head
"""
N_FRAMES = 20


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _clips(folder: Path, n_joints: int = 5) -> Path:
    """8 npz clips of `n_joints` joints: 2 actions x (3 train + 1 test), 2 persons, 20 frames each."""
    folder.mkdir()
    for k in range(8):
        kp = moving_poses(2, N_FRAMES, n_joints, seed=k)  # (M, T, V, 2)
        sc = confidences((2, N_FRAMES, n_joints), seed=100 + k)
        write_npz_clip(folder / f"c{k}.npz", kp, sc, label_name=("walk", "wave")[k % 2],
                       split="test" if k >= 6 else "train", img_h=480, img_w=640)  # fmt: skip
    return folder


def _ingest(tmp: Path, layout_text: str, name: str) -> Path:
    yaml_path = tmp / f"{name}.yaml"
    yaml_path.write_text(layout_text)
    store = tmp / f"{name}.zarr"
    args = ["ingest", str(_clips(tmp / f"{name}_clips")), "--out", str(store), "--format", "npz"]
    res = runner.invoke(etl_app, [*args, "--layout", str(yaml_path)])
    assert res.exit_code == 0, res.output
    return store


@pytest.fixture(scope="module")
def star_store(tmp_path_factory) -> Path:
    return _ingest(tmp_path_factory.mktemp("star"), STAR5, "star5")


def _fit(store: Path, out: Path, model: str, epochs: int, *extra: str):
    args = ["fit", str(store), "--source", "coordinates", "--model", model, "--preset", "tiny"]
    args += ["--clip-len", "8"]
    more = ["--batch-size", "4", "--epochs", str(epochs), "--workers", "0", "--seed", "1", "--out", str(out)]
    return runner.invoke(app, [*args, *more, *extra])


@pytest.mark.parametrize("model", ["stgcnpp", "ctrgcn"])
def test_fit_resume_evaluate_predict_export_on_a_yaml_layout(model, star_store, tmp_path):
    layout = KeypointStore.open(star_store).layout
    assert layout.name == "star5"
    assert layout.definition is not None
    run = tmp_path / "run"
    res = _fit(star_store, run, model, 1)
    assert res.exit_code == 0, res.output
    ckpt = load_checkpoint(run / "last.pt")
    # the graph comes from the stored definition: 5 joints rooted at the head, in the model and its record
    assert ckpt["model_config"]["layout"] == "star5"
    assert ckpt["model_config"]["layout_def"] == layout.definition
    assert ckpt["coordinates"]["layout_def"] == layout.definition
    first_a = next(k for k in ckpt["model"] if k.endswith(".A"))
    assert tuple(ckpt["model"][first_a].shape) == (3, 5, 5)
    assert load_model(run / "last.pt").model.config.graph_layout() == layout

    # resume: a second epoch on top of the first, from the custom-layout checkpoint
    res = _fit(star_store, run, model, 2, "--resume")
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output
    assert len(load_checkpoint(run / "last.pt")["history"]) == 2

    out = tmp_path / "eval.json"
    ev = ["evaluate", str(run / "last.pt"), str(star_store), "--clips", "2", "--workers", "0"]
    res = runner.invoke(app, [*ev, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(json.loads(out.read_text())["clip_scores"]) == 2  # the test split

    clip = star_store.parent / "star5_clips" / "c6.npz"
    res = runner.invoke(app, ["predict", str(run / "last.pt"), str(clip), "--json", "--top-k", "2"])
    assert res.exit_code == 0, res.output
    (pred,) = json.loads(res.stdout)["clips"]
    assert {t["label"] for t in pred["top"]} == {"walk", "wave"}
    windows = tmp_path / "windows.json"
    res = runner.invoke(
        app, ["predict", str(run / "last.pt"), str(clip), "--window", "8", "--out", f"{windows}"]
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(windows.read_text())["clips"][0]["windows"]
    assert [(w["start_frame"], w["end_frame"]) for w in rows] == [(0, 8), (4, 12), (8, 16), (12, 20)]

    exported = tmp_path / "model.pt"
    res = runner.invoke(app, ["export", str(run / "last.pt"), "--out", str(exported)])
    assert res.exit_code == 0, res.output
    meta = json.loads(exported.with_name(exported.name + ".json").read_text())
    assert meta["input"]["shape"] == ["batch", 2, "frames", 5, 3]
    assert meta["coordinates"]["layout_def"] == layout.definition  # how to read poses for it travels along


def test_builtin_layout_checkpoints_carry_no_definition_and_other_stores_are_refused(
    star_store, keypoint_store, tmp_path
):
    res = _fit(keypoint_store, tmp_path / "coco", "stgcnpp", 1)
    assert res.exit_code == 0, res.output
    ckpt = load_checkpoint(tmp_path / "coco" / "last.pt")
    assert "layout_def" not in ckpt["model_config"]  # as before custom layouts: the same keys, the same bytes
    assert "layout_def" not in ckpt["coordinates"]
    res = _fit(star_store, tmp_path / "star", "stgcnpp", 1)
    assert res.exit_code == 0, res.output
    for checkpoint, store in ((tmp_path / "coco", star_store), (tmp_path / "star", keypoint_store)):
        res = runner.invoke(app, ["evaluate", str(checkpoint / "last.pt"), str(store), "--workers", "0"])
        assert res.exit_code == 1
        assert "was not trained on layout" in res.output
        assert "Traceback" not in res.output


def test_a_layout_without_centre_or_a_broken_definition_is_one_line(tmp_path, star_store):
    no_centre = _ingest(tmp_path, STAR5.replace("center: head\n", ""), "nocentre")
    res = _fit(no_centre, tmp_path / "run", "stgcnpp", 1)
    assert res.exit_code == 1
    assert "names no centre joint" in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output

    res = _fit(star_store, tmp_path / "star", "ctrgcn", 1)
    assert res.exit_code == 0, res.output
    ckpt = load_checkpoint(tmp_path / "star" / "last.pt")
    for where in ("model_config", "coordinates"):  # a definition edited by hand: a limb to no joint
        ckpt[where]["layout_def"]["limbs"][0] = ["head", "tail"]
    save_checkpoint(tmp_path / "broken.pt", ckpt)
    clips = star_store.parent / "star5_clips"
    res = runner.invoke(app, ["predict", str(tmp_path / "broken.pt"), str(clips)])
    assert res.exit_code == 1
    assert "'tail', which is not one of the joints" in res.output
    assert "Traceback" not in res.output
    ckpt["model_config"]["layout_def"] = ckpt["coordinates"]["layout_def"] = None
    save_checkpoint(tmp_path / "nameless.pt", ckpt)  # a custom layout's name without its definition
    res = runner.invoke(app, ["predict", str(tmp_path / "nameless.pt"), str(clips)])
    assert res.exit_code == 1
    assert "unknown layout 'star5'" in res.output
    assert "Traceback" not in res.output
