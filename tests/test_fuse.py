"""`actrec-train fuse`: the weighted sum of evaluate outputs' per-clip scores, its refusals, and two real runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_train import tiny
from typer.testing import CliRunner

from etl.stores.heatmap_store import HeatmapStore
from train.cli import app
from train.deploy.fuse import fuse_runs
from train.fit import fit
from train.metrics import classification_metrics

runner = CliRunner()
CLASSES = ["jump", "run", "wave"]


def _eval_json(path: Path, scores: dict[str, list[float]], labels: dict[str, str], classes=CLASSES) -> Path:
    """An evaluate output as `evaluate --out` writes it (only the keys fuse reads, plus top1)."""
    body = {
        "top1": 0.0,
        "model": path.stem,
        "classes": classes,
        "clip_scores": {c: {"label": labels[c], "scores": s} for c, s in scores.items()},
    }
    path.write_text(json.dumps(body))
    return path


LABELS = {"a": "jump", "b": "run", "c": "wave"}


@pytest.fixture
def two_runs(tmp_path) -> tuple[Path, Path]:
    # run 1 gets a and c right, run 2 gets b right; weights 2:1 decide each clip (hand computed below)
    one = _eval_json(
        tmp_path / "one.json",
        {"a": [0.6, 0.3, 0.1], "b": [0.5, 0.4, 0.1], "c": [0.2, 0.3, 0.5]},
        LABELS,
    )
    two = _eval_json(
        tmp_path / "two.json",
        {"a": [0.1, 0.8, 0.1], "b": [0.0, 1.0, 0.0], "c": [0.1, 0.6, 0.3]},
        LABELS,
    )
    return one, two


def test_fusion_is_the_weighted_sum_of_the_scores(two_runs):
    fused = fuse_runs(list(two_runs), "2,1")
    # (2 * one + 1 * two) / 3, by hand:
    # a: [1.3, 1.4, 0.3] / 3 -> run (wrong); b: [1.0, 1.8, 0.2] / 3 -> run (right); c: [0.5, 1.2, 1.3] / 3 -> wave
    want = {"a": [1.3, 1.4, 0.3], "b": [1.0, 1.8, 0.2], "c": [0.5, 1.2, 1.3]}
    for clip, scores in want.items():
        assert fused["clip_scores"][clip]["scores"] == pytest.approx(np.array(scores) / 3)
        assert fused["clip_scores"][clip]["label"] == LABELS[clip]
    assert fused["top1"] == pytest.approx(2 / 3)
    assert fused["per_class"] == {"jump": 0.0, "run": 1.0, "wave": 1.0}
    assert fused["mean_class_acc"] == pytest.approx(2 / 3)
    assert fused["confusion_matrix"] == [[0, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert fused["loss"] == pytest.approx(-np.mean(np.log([1.3 / 3, 1.8 / 3, 1.3 / 3])))
    assert [i["weight"] for i in fused["inputs"]] == [2.0, 1.0]
    # equal weights (the default): a [0.7, 1.1, 0.2] -> run, b [0.5, 1.4, 0.1] -> run, c [0.3, 0.9, 0.8] -> run
    even = fuse_runs(list(two_runs))
    assert even["top1"] == pytest.approx(1 / 3)
    assert even["clip_scores"]["a"]["scores"] == pytest.approx([0.35, 0.55, 0.1])
    # a weight 0 leaves the other run's own scores and metrics
    alone = fuse_runs(list(two_runs), "1,0")
    assert alone["top1"] == pytest.approx(2 / 3)
    assert alone["per_class"] == {"jump": 1.0, "run": 0.0, "wave": 1.0}


def test_fuse_cli_writes_the_json_and_the_scores(two_runs, tmp_path):
    out, scores = tmp_path / "fused" / "eval.json", tmp_path / "fused" / "scores.json"
    result = runner.invoke(
        app, ["fuse", *map(str, two_runs), "--weights", "2,1", "--out", str(out), "--scores", str(scores)]
    )
    assert result.exit_code == 0, result.output
    assert "fused one x2, two x1 on 3 clips: top1 0.667" in result.output
    assert json.loads(scores.read_text()) == pytest.approx(
        {k: json.loads(out.read_text())[k] for k in ("top1", "top5", "mean_class_acc")}
    )


def test_fuse_names_each_run_where_models_repeat(tmp_path):
    """Four streams of one graph network are four runs of one model: the summary names their folders."""
    evals = []
    for run in ("stgcnpp_j", "stgcnpp_b"):
        (tmp_path / run).mkdir()
        path = _eval_json(tmp_path / run / "eval.json", {"a": [0.6, 0.3, 0.1]}, {"a": "jump"})
        path.write_text(path.read_text().replace('"model": "eval"', '"model": "stgcnpp"'))
        evals.append(str(path))
    result = runner.invoke(app, ["fuse", *evals, "--weights", "2,1"])
    assert result.exit_code == 0, result.output
    assert "fused stgcnpp (stgcnpp_j) x2, stgcnpp (stgcnpp_b) x1 on 1 clips" in result.output
    # a fusion fused again (the four streams with c3d) is named by its folder too; a single model is not
    streams = str(tmp_path / "stgcnpp_fused" / "eval.json")
    assert runner.invoke(app, ["fuse", *evals, "--out", streams]).exit_code == 0
    c3d = _eval_json(tmp_path / "c3d.json", {"a": [0.2, 0.7, 0.1]}, {"a": "jump"})
    c3d.write_text(c3d.read_text().replace('"model": "eval"', '"model": "c3d"'))
    result = runner.invoke(app, ["fuse", streams, str(c3d)])
    assert result.exit_code == 0, result.output
    assert "fused fused (stgcnpp_fused) x1, c3d x1 on 1 clips" in result.output


def _refused(args: list[str]) -> str:
    result = runner.invoke(app, ["fuse", *map(str, args)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    return lines[0]


def test_fuse_refuses_mismatched_runs_in_one_line(two_runs, tmp_path):
    one, two = two_runs
    fewer = _eval_json(tmp_path / "fewer.json", {"a": [1, 0, 0], "x": [0, 1, 0]}, {"a": "jump", "x": "run"})
    line = _refused([one, fewer])
    assert f"{one} and {fewer} cover different clips: 2 in {one} only (e.g. 'b'), 1 in {fewer} only" in line
    other_classes = _eval_json(
        tmp_path / "classes.json",
        {"a": [1, 0, 0], "b": [0, 1, 0], "c": [0, 0, 1]},
        LABELS | {"b": "walk"},
        classes=["jump", "walk", "wave"],
    )
    assert "different class lists: class 1 is 'run' vs 'walk'" in _refused([one, other_classes])
    relabelled = _eval_json(
        tmp_path / "relabelled.json", {c: [1, 0, 0] for c in LABELS}, LABELS | {"c": "jump"}
    )
    assert "label clip 'c' differently ('wave' vs 'jump')" in _refused([one, relabelled])
    assert "gives 3 weights for 2 files" in _refused([one, two, "--weights", "1,1,1"])
    assert "not a comma-separated list" in _refused([one, two, "--weights", "1;1"])
    assert "each weight must be a number >= 0" in _refused([one, two, "--weights", "1,-1"])
    assert "two or more" in _refused([one])
    older = tmp_path / "older.json"
    older.write_text(json.dumps({"top1": 0.5, "top5": 1.0, "model": "c3d"}))
    assert f"{older} has no per-clip scores (written by an older evaluate): re-run" in _refused([one, older])
    assert "does not exist" in _refused([one, tmp_path / "missing.json"])
    short = _eval_json(tmp_path / "short.json", {c: [1, 0] for c in LABELS}, LABELS)
    assert f"{short}: clip 'a' has no label among its classes and 3 scores" in _refused([one, short])
    (tmp_path / "bad.json").write_text("{not json")
    assert "is not an evaluate output JSON" in _refused([one, tmp_path / "bad.json"])


@pytest.fixture(scope="module")
def two_evaluations(heatmap_store, keypoint_store, small_render, tmp_path_factory) -> tuple[Path, Path]:
    """c3d on the heatmap store and cnn_lstm on the keypoint store (rendered on the fly), 1 epoch each,
    evaluated through the CLI on the same test clips."""
    root = tmp_path_factory.mktemp("fuse")
    fit(tiny(heatmap_store, root / "c3d", epochs=1), log=lambda _: None)
    lstm = tiny(
        keypoint_store, root / "lstm", model="cnn_lstm", epochs=1, source="keypoints", size=small_render.size
    )
    fit(lstm, log=lambda _: None)
    evals = []
    for run, store, source in (("c3d", heatmap_store, "heatmaps"), ("lstm", keypoint_store, "keypoints")):
        out = root / f"{run}.json"
        args = ["evaluate", str(root / run / "last.pt"), str(store), "--clips", "2", "--no-flip"]
        result = runner.invoke(app, [*args, "--workers", "0", "--source", source, "--out", str(out)])
        assert result.exit_code == 0, result.output
        evals.append(out)
    return evals[0], evals[1]


def test_evaluate_keeps_each_clips_scores_in_store_order(two_evaluations, heatmap_store):
    store = HeatmapStore.open(heatmap_store)
    test = store.table[store.table.split == "test"]
    for path in two_evaluations:
        ev = json.loads(path.read_text())
        assert ev["classes"] == list(store.classes)
        assert list(ev["clip_scores"]) == [str(c) for c in test.clip_id]
        assert [e["label"] for e in ev["clip_scores"].values()] == [store.classes[i] for i in test.label]
        probs = np.array([e["scores"] for e in ev["clip_scores"].values()])  # (N, K)
        assert probs.sum(axis=1) == pytest.approx(1.0, abs=1e-5)
        labels = np.array([store.classes.index(e["label"]) for e in ev["clip_scores"].values()])
        again = classification_metrics(probs, labels, ev["classes"])
        assert (again["top1"], again["per_class"]) == (ev["top1"], ev["per_class"])  # the scores it reports


def test_two_real_runs_fused(two_evaluations, tmp_path):
    c3d, lstm = two_evaluations
    out = tmp_path / "fused.json"
    result = runner.invoke(app, ["fuse", str(c3d), str(lstm), "--weights", "1,3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    fused = json.loads(out.read_text())
    a, b = (json.loads(p.read_text())["clip_scores"] for p in (c3d, lstm))
    for clip, entry in fused["clip_scores"].items():
        want = (np.array(a[clip]["scores"]) + 3 * np.array(b[clip]["scores"])) / 4
        assert entry["scores"] == pytest.approx(want)
    assert fused["n_clips"] == len(a)
    assert [i["model"] for i in fused["inputs"]] == ["c3d", "cnn_lstm"]
    # weight 0 on the second run: exactly the first run's metrics
    only = fuse_runs([c3d, lstm], "1,0")
    first = json.loads(c3d.read_text())
    for key in ("top1", "top5", "mean_class_acc", "per_class", "confusion_matrix"):
        assert only[key] == first[key], key
