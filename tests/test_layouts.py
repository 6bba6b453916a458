"""Layouts beyond the built-in ones (issue 26): `--layout from-file` (DeepLabCut, SLEAP, COCO, MMPose files naming
their joints and skeleton) and `--layout PATH.yaml`, stored with the keypoint store, the heatmap store and the
checkpoint, so that render, fit and predict work on them; built-in layouts keep their bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_formats import add_sleap_edges, write_dlc, write_sleap_csv
from fixtures_pose import confidences, moving_poses, write_sleap_analysis
from fixtures_train import tiny

from etl.commands.ingest import ingest
from etl.commands.render import render
from etl.common.errors import ActrecError
from etl.heatmaps.spec import RenderSpec
from etl.pose.layout_def import stored_layout
from etl.pose.layout_file import infer_pairs, layout_option, load_layout_yaml
from etl.pose.skeleton import COCO17
from etl.readers import ReadOptions
from etl.stores.heatmap_store import HeatmapStore
from etl.stores.keypoint_store import KeypointStore
from train.deploy.predict import predict_file
from train.fit import fit

MOUSE = ["snout", "leftear", "rightear", "tailbase"]
MOUSE_SKELETON = [["snout", "leftear"], ["snout", "rightear"], ["snout", "tailbase"]]
FLY = ["head", "thorax", "abdomen", "wingL", "wingR", "forelegL4", "forelegR4", "midlegL4", "midlegR4",
       "hindlegL4", "hindlegR4", "eyeL", "eyeR"]  # fmt: skip  # SLEAP's 13-node fly
FLY_EDGES = [("thorax", "head"), ("thorax", "abdomen"), ("thorax", "wingL"), ("thorax", "wingR"),
             ("thorax", "forelegL4"), ("thorax", "forelegR4"), ("thorax", "midlegL4"), ("thorax", "midlegR4"),
             ("thorax", "hindlegL4"), ("thorax", "hindlegR4"), ("head", "eyeL"), ("head", "eyeR")]  # fmt: skip
BIRD = ["beak", "crown", "left_wing", "right_wing", "tail"]
BIRD_SKELETON = [[1, 2], [2, 3], [2, 4], [2, 5]]  # COCO counts joints from 1
# (clip, label, split): two classes, each in train and test
CLIPS = [("c0", "walk", "train"), ("c1", "groom", "train"), ("c2", "walk", "test"), ("c3", "groom", "test")]
N_FRAMES = 12


def _poses(n_persons: int, n_joints: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    kp = moving_poses(n_persons, N_FRAMES, n_joints, seed=10 + k).astype(np.float64)  # (M, T, V, 2)
    return kp, confidences((n_persons, N_FRAMES, n_joints), seed=20 + k).astype(np.float64)


def _manifest(folder: Path, stems: list[str]) -> Path:
    path = folder.parent / f"{folder.name}_labels.csv"
    rows = ["clip_id,label_name,split"] + [
        f"{s},{label},{split}" for s, (_, label, split) in zip(stems, CLIPS, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def _dlc_folder(tmp: Path, suffix: str, config: bool) -> tuple[Path, Path]:
    folder = tmp / f"dlc{suffix}"
    folder.mkdir()
    for k, (name, _, _) in enumerate(CLIPS):
        kp, sc = _poses(2, 4, k)
        write_dlc(
            folder / f"{name}DLC_dlcrnetms5_miceJan1shuffle1_50000{suffix}", kp, sc, MOUSE, ["mus1", "mus2"]
        )
    if (
        config
    ):  # the project's config.yaml one folder up, as DeepLabCut lays out a project (videos/ beside it)
        (tmp / "config.yaml").write_text(
            "Task: mice\nmultianimalbodyparts: [snout, leftear, rightear, tailbase]\n"
            "skeleton:\n" + "".join(f"- [{a}, {b}]\n" for a, b in MOUSE_SKELETON)
        )
    return folder, _manifest(folder, [c for c, _, _ in CLIPS])


def _sleap_folder(tmp: Path, kind: str) -> tuple[Path, Path]:
    folder = tmp / f"sleap_{kind}"
    folder.mkdir()
    for k, (name, _, _) in enumerate(CLIPS):
        kp, sc = _poses(2, 13, k)
        if kind == "h5":
            path = write_sleap_analysis(folder / f"{name}.analysis.h5", kp, sc, FLY)
            add_sleap_edges(path, FLY, FLY_EDGES)
        else:
            write_sleap_csv(folder / f"{name}.analysis.csv", kp, sc, FLY)
    return folder, _manifest(folder, [c for c, _, _ in CLIPS])


def _coco_folder(tmp: Path) -> tuple[Path, Path]:
    folder = tmp / "coco"
    folder.mkdir()
    for k, (name, _, _) in enumerate(CLIPS):
        kp, sc = _poses(1, 5, k)
        images = [
            {"id": t, "file_name": f"{name}/{t:04d}.jpg", "height": 480, "width": 640}
            for t in range(N_FRAMES)
        ]
        annotations = [
            {"id": t, "image_id": t, "category_id": 1, "track_id": 0,
             "keypoints": np.concatenate([kp[0, t], sc[0, t, :, None]], -1).ravel().round(3).tolist()}
            for t in range(N_FRAMES)
        ]  # fmt: skip
        category = {"id": 1, "name": "bird", "keypoints": BIRD, "skeleton": BIRD_SKELETON}
        data = {"images": images, "annotations": annotations, "categories": [category]}
        (folder / f"{name}.json").write_text(json.dumps(data))
    return folder, _manifest(folder, [c for c, _, _ in CLIPS])


def _mmpose_folder(tmp: Path) -> tuple[Path, Path]:
    folder = tmp / "mmpose"
    folder.mkdir()
    meta = {
        "keypoint_id2name": {str(i): n for i, n in enumerate(BIRD)},
        "skeleton_links": [[0, 1], [1, 2], [1, 3], [1, 4]],
    }
    for k, (name, _, _) in enumerate(CLIPS):
        kp, sc = _poses(1, 5, k)
        frames = [
            {"frame_id": t, "instances": [{"keypoints": kp[0, t].round(3).tolist(),
                                           "keypoint_scores": sc[0, t].round(3).tolist(), "bbox_score": 0.9}]}
            for t in range(N_FRAMES)
        ]  # fmt: skip
        (folder / f"{name}.json").write_text(json.dumps({"meta_info": meta, "instance_info": frames}))
    return folder, _manifest(folder, [c for c, _, _ in CLIPS])


def _pipeline(tmp: Path, folder: Path, labels: Path, fmt: str, layout_value: str):
    """ingest -> render -> fit (tiny, 1 epoch) -> predict; returns the keypoint store's layout and a prediction."""
    layout = layout_option(layout_value, [folder], fmt)
    kp_store = tmp / f"{folder.name}.kp.zarr"
    ingest([folder], out=kp_store, fmt=fmt, options=ReadOptions(layout=layout, labels_csv=labels))
    hm_store = tmp / f"{folder.name}.hm.zarr"
    render(kp_store, hm_store, RenderSpec(size=16), threads=1)
    run = tmp / f"{folder.name}.run"
    fit(tiny(hm_store, run, epochs=1), log=lambda _: None)
    checkpoint = run / "best.pt"
    first = sorted(p for p in folder.iterdir() if p.suffix in (".h5", ".csv", ".json"))[0]
    (prediction,) = predict_file(checkpoint, first, fmt=fmt, top_k=2, clips=1, device="cpu")
    return KeypointStore.open(kp_store), HeatmapStore.open(hm_store), checkpoint, prediction


def _checkpoint_layout(checkpoint: Path):
    render_dict = torch.load(checkpoint, map_location="cpu", weights_only=True)["render"]
    return stored_layout(render_dict, str(checkpoint)), render_dict


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".h5", ".csv"])
def test_dlc_multi_animal_from_file(tmp_path, suffix):
    folder, labels = _dlc_folder(tmp_path, suffix, config=suffix == ".h5")
    kp, hm, checkpoint, prediction = _pipeline(tmp_path, folder, labels, "dlc", "from-file")
    assert kp.layout.name == "dlc-4"
    assert kp.layout.joints == tuple(MOUSE)
    assert kp.read_clip(0)[0].shape == (2, N_FRAMES, 4, 2)  # one person per individual
    assert kp.layout.left_right_joints == ((1, 2),)  # leftear/rightear, from the names
    if suffix == ".h5":  # the config's skeleton gives the limbs, mirrored through the ear pair
        assert kp.layout.limb_names == ("snout-leftear", "snout-rightear", "snout-tailbase")
        assert hm.attrs["channels"][-3:] == [
            "limb:snout-leftear",
            "limb:snout-rightear",
            "limb:snout-tailbase",
        ]
        assert hm.attrs["flip_permutation"] == [0, 2, 1, 3, 5, 4, 6]
    else:  # no config beside the CSV: no edges, joint channels only
        assert kp.layout.limbs == ()
        assert hm.attrs["channels"] == [f"joint:{n}" for n in MOUSE]
        assert hm.attrs["flip_permutation"] == [0, 2, 1, 3]
    assert hm.layout == kp.layout
    layout, render_dict = _checkpoint_layout(checkpoint)
    assert layout == kp.layout
    assert render_dict["layout"] == "dlc-4"
    assert prediction.top[0][0] in ("walk", "groom")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["h5", "csv"])
def test_sleap_fly_from_file(tmp_path, kind):
    folder, labels = _sleap_folder(tmp_path, kind)
    kp, hm, checkpoint, prediction = _pipeline(
        tmp_path, folder, labels, "h5" if kind == "h5" else "sleap-csv", "from-file"
    )
    assert kp.layout.joints == tuple(FLY)
    assert kp.layout.name == "sleap-13"
    pairs = {(FLY[a], FLY[b]) for a, b in kp.layout.left_right_joints}
    assert pairs == {("wingL", "wingR"), ("forelegL4", "forelegR4"), ("midlegL4", "midlegR4"),
                     ("hindlegL4", "hindlegR4"), ("eyeL", "eyeR")}  # fmt: skip
    assert len(kp.layout.limbs) == (12 if kind == "h5" else 0)  # the analysis CSV carries no edges
    assert len(hm.attrs["channels"]) == 13 + len(kp.layout.limbs)
    if kind == "h5":
        flip = hm.attrs["flip_permutation"]
        wing_l = hm.attrs["channels"].index("limb:thorax-wingL")
        assert hm.attrs["channels"][flip[wing_l]] == "limb:thorax-wingR"
    assert _checkpoint_layout(checkpoint)[0] == kp.layout
    assert prediction.top[0][0] in ("walk", "groom")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["coco-json", "mmpose-json"])
def test_coco_and_mmpose_files_with_their_own_skeleton(tmp_path, fmt):
    folder, labels = (_coco_folder if fmt == "coco-json" else _mmpose_folder)(tmp_path)
    kp, hm, checkpoint, prediction = _pipeline(tmp_path, folder, labels, fmt, "from-file")
    assert kp.layout.joints == tuple(BIRD)
    assert kp.layout.limb_names == ("beak-crown", "crown-left_wing", "crown-right_wing", "crown-tail")
    assert kp.layout.left_right_joints == ((2, 3),)
    assert kp.layout.left_right_limbs == ((1, 2),)
    assert hm.layout == kp.layout == _checkpoint_layout(checkpoint)[0]
    assert prediction.top[0][0] in ("walk", "groom")


@pytest.mark.slow
def test_layout_yaml_through_the_pipeline(tmp_path):
    folder, labels = _dlc_folder(tmp_path, ".csv", config=False)
    yaml_path = tmp_path / "mouse.yaml"
    yaml_path.write_text(
        "name: mouse4\njoints: [snout, leftear, rightear, tailbase]\n"
        "limbs:\n  - [snout, leftear]\n  - [snout, rightear]\n  - [leftear, tailbase]\n  - [rightear, tailbase]\n"
        "left_right:\n  - [leftear, rightear]\ncentre: tailbase\ndescription: a mouse seen from above\n"
    )
    kp, hm, checkpoint, prediction = _pipeline(tmp_path, folder, labels, "dlc", str(yaml_path))
    assert kp.layout.name == "mouse4"
    assert kp.layout.center == "tailbase"
    assert kp.attrs["layout"] == "mouse4"
    assert kp.attrs["layout_def"]["center"] == "tailbase"
    assert kp.layout.left_right_limbs == ((0, 1), (2, 3))
    assert len(hm.attrs["channels"]) == 4 + 4
    assert _checkpoint_layout(checkpoint)[0] == kp.layout
    assert prediction.top[0][0] in ("walk", "groom")
    # fit --source keypoints renders the custom layout on the fly: the same channels, the same layout stored
    run = tmp_path / "onfly.run"
    fit(tiny(kp.path, run, epochs=1, source="keypoints", size=16), log=lambda _: None)
    layout, render_dict = _checkpoint_layout(run / "best.pt")
    assert layout == kp.layout
    assert render_dict["channels"] == hm.attrs["channels"]
    first = sorted(folder.iterdir())[0]
    assert predict_file(run / "best.pt", first, fmt="dlc", clips=1, device="cpu")[0].clip_id == "c0"


def test_from_file_cli_ingest_names_the_layout(tmp_path):
    from typer.testing import CliRunner

    from etl.cli import app

    folder, labels = _sleap_folder(tmp_path, "h5")
    out = tmp_path / "kp.zarr"
    result = CliRunner().invoke(
        app, ["ingest", str(folder), "--out", str(out), "--layout", "from-file", "--labels", str(labels)]
    )
    assert result.exit_code == 0, result.output
    store = KeypointStore.open(out)
    assert store.layout.joints == tuple(FLY)
    assert len(store.layout.limbs) == 12
    assert set(store.table["layout"]) == {"sleap-13"}


def test_builtin_layouts_store_no_definition(keypoint_store, heatmap_store):
    """Built-in layouts are stored by name only: store attrs and checkpoint bytes stay as they were."""
    assert "layout_def" not in KeypointStore.open(keypoint_store).attrs
    assert "layout_def" not in HeatmapStore.open(heatmap_store).attrs
    assert COCO17.definition is None
    assert "layout_def" not in RenderSpec().to_checkpoint(COCO17, 56)
    assert list(RenderSpec().to_checkpoint(COCO17, 56)) == list(RenderSpec.checkpoint_keys())


def test_a_layout_without_limbs_draws_joints_only():
    layout = load_layout_yaml_text("name: ant\njoints: [head, left_antenna, right_antenna]\n")
    assert layout.channel_names("joints+limbs") == ["joint:head", "joint:left_antenna", "joint:right_antenna"]
    assert layout.channel_flip("joints+limbs") == [0, 2, 1]
    with pytest.raises(ActrecError, match="has no limbs to draw"):
        layout.channel_names("limbs")


def test_an_animal_file_under_a_human_layout_points_to_from_file(tmp_path):
    folder, labels = _dlc_folder(tmp_path, ".csv", config=False)
    with pytest.raises(ActrecError) as err:
        ingest([folder], out=tmp_path / "kp.zarr", fmt="dlc", options=ReadOptions(COCO17, labels_csv=labels))
    assert "4 joints per person, but layout 'coco17' has 17; to take the file's own joints" in str(err.value)
    assert "--layout from-file" in str(err.value)


def test_from_file_with_builtin_joint_names_is_the_builtin(tmp_path):
    path = write_dlc(tmp_path / "personDLC_x.csv", *_poses(1, 17, 0), list(COCO17.joints), None)
    assert layout_option("from-file", [path], "auto") is COCO17


def test_pairs_inferred_from_the_usual_names():
    names = ["nose", "left_eye", "right_eye", "l_paw", "r_paw", "wingL", "wingR", "legL1", "legR1", "LeftEar",
             "RightEar", "tail_left", "tail_right", "spine"]  # fmt: skip
    pairs = [(names[a], names[b]) for a, b in infer_pairs(names)]
    assert pairs == [("left_eye", "right_eye"), ("l_paw", "r_paw"), ("wingL", "wingR"), ("legL1", "legR1"),
                     ("LeftEar", "RightEar"), ("tail_left", "tail_right")]  # fmt: skip
    assert infer_pairs(["L", "R", "left", "right", "spine"]) == []  # no stem: no pair


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nlimbs: [[a, b]]\n", "has no 'joints'"),
        ("joints: [a, b]\nlimbs: [[a, c]]\n", "limb 0 names 'c', which is not one of the joints"),
        ("joints: [a, b, a]\n", "listed twice: a"),
        (
            "joints: [a, left_b, right_b]\nleft_right: [[left_b, right_c]]\n",
            "left/right pair 0 names 'right_c'",
        ),
        ("joints: [a, b]\nlimbs: [[a, b], [b, a]]\n", "a limb is listed twice"),
        (
            "joints: [a, left_b, right_b]\nlimbs: [[a, left_b]]\n",
            "limb a-left_b mirrors to a-right_b, which is not a limb",
        ),
        ("name: coco17\njoints: [a, b]\n", "taken by a built-in layout"),
        ("joints: [a, b]\ncenter: c\n", "center joint 'c'"),
        ("joints: [a, b]\nbones: []\n", "unknown key(s) bones"),
        ("joints: [a, b\n", "is not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_bad_layout_yaml_is_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ActrecError) as err:
        load_layout_yaml(path)
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)
    assert str(path) in str(err.value)


def test_from_file_refuses_a_format_without_names(tmp_path):
    path = tmp_path / "clip.npz"
    np.savez(path, keypoints=np.zeros((4, 1, 17, 2)), scores=np.ones((4, 1, 17)))
    with pytest.raises(ActrecError, match="does not name its joints"):
        layout_option("from-file", [path], "npz")


def load_layout_yaml_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "layout.yaml"
        path.write_text(text)
        return load_layout_yaml(path)


def test_stored_definition_must_match_its_name():
    definition = {"name": "mouse4", "joints": ["a", "b"], "limbs": [["a", "b"]]}
    with pytest.raises(ActrecError, match="does not match its stored definition"):
        stored_layout({"layout": "mouse5", "layout_def": definition}, "store x")
    assert stored_layout({"layout": "mouse4", "layout_def": definition}).joints == ("a", "b")


def test_checkpoint_render_dict_of_a_custom_layout_is_checked():
    from train.checkpoint import _check_render

    layout = load_layout_yaml_text("name: ant\njoints: [head, left_antenna, right_antenna]\n")
    render_dict = RenderSpec(channels="joints").to_checkpoint(layout, 32)
    assert render_dict["layout_def"]["joints"] == ["head", "left_antenna", "right_antenna"]
    _check_render(render_dict, 3, "ant.pt")  # a custom layout with its definition passes
    broken = {**render_dict, "layout_def": {**render_dict["layout_def"], "joints": ["head", "head"]}}
    with pytest.raises(ActrecError, match=r"ant\.pt: joint name"):
        _check_render(broken, 3, "ant.pt")
    with pytest.raises(ActrecError, match=r"ant\.pt: unknown layout 'ant'"):
        _check_render({k: v for k, v in render_dict.items() if k != "layout_def"}, 3, "ant.pt")
