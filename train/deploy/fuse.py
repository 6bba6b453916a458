"""Late fusion of `evaluate` outputs: the weighted sum of each clip's class scores over several runs (any model
families, streams or inputs), scored like one run (`actrec-train fuse`).

MMAction2's tools/analysis_tools/report_accuracy.py sums the runs' scores; PYSKL documents the weights (1:1 for
two streams, 2:2:1:1 for four). Here the sum is divided by the weights' total, so the fused scores stay
probabilities (a fused JSON can be fused again); the ranking, hence every metric, is the plain sum's.
Pure: no printing, no torch; errors are one-line ActrecErrors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from etl.common.errors import ActrecError
from train.metrics import classification_metrics, clip_scores

SCORES = "clip_scores"  # evaluate's per-clip scores: {clip id: {"label": class name, "scores": [K floats]}}


def parse_weights(text: str | None, n_runs: int) -> list[float]:
    """'2,2,1,1' -> [2.0, 2.0, 1.0, 1.0]; None -> one weight 1 per run. Finite, >= 0, not all 0."""
    if text is None:
        return [1.0] * n_runs
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise ActrecError(
            f"--weights {text!r} is not a comma-separated list of numbers (e.g. 2,2,1,1)"
        ) from None
    if len(weights) != n_runs:
        raise ActrecError(
            f"--weights {text!r} gives {len(weights)} weights for {n_runs} files: give one per file"
        )
    if not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
        raise ActrecError(f"--weights {text!r}: each weight must be a number >= 0, and one at least > 0")
    return weights


def load_run(path: Path) -> dict:
    """An evaluate output JSON with its per-clip scores, or a one-line error saying what to do."""
    path = Path(path)
    try:
        run = json.loads(path.read_text())
    except FileNotFoundError:
        raise ActrecError(
            f"{path} does not exist: give the JSON that `actrec-train evaluate --out` wrote"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ActrecError(f"{path} is not an evaluate output JSON ({problem})") from None
    if not isinstance(run, dict) or "top1" not in run:
        raise ActrecError(
            f"{path} is not an evaluate output JSON (no top1): give `actrec-train evaluate --out`'s"
        )
    if not isinstance(run.get(SCORES), dict) or not isinstance(run.get("classes"), list):
        raise ActrecError(
            f"{path} has no per-clip scores (written by an older evaluate): re-run `actrec-train evaluate ... "
            f"--out {path}` to fuse it"
        )
    classes, k = set(map(str, run["classes"])), len(run["classes"])
    for clip_id, entry in run[SCORES].items():
        ok = (
            isinstance(entry, dict)
            and entry.get("label") in classes
            and isinstance(entry.get("scores"), list)
        )
        if (
            not ok
            or len(entry["scores"]) != k
            or not all(isinstance(p, int | float) for p in entry["scores"])
        ):
            raise ActrecError(
                f"{path}: clip {clip_id!r} has no label among its classes and {k} scores: the file is damaged; "
                "re-run `actrec-train evaluate` to write it again"
            )
    return run


def check_same_clips(runs: list[tuple[str, dict]]) -> None:
    """Every run must score the same clips, with the same labels, over the same class list (in order)."""
    (first, ref), *others = runs
    for name, run in others:
        if run["classes"] != ref["classes"]:
            raise ActrecError(f"{first} and {name} have different class lists: {_class_difference(ref, run)}")
        mine, theirs = set(ref[SCORES]), set(run[SCORES])
        if mine != theirs:
            only_a, only_b = sorted(mine - theirs), sorted(theirs - mine)
            raise ActrecError(
                f"{first} and {name} cover different clips: {len(only_a)} in {first} only"
                + (f" (e.g. {only_a[0]!r})" if only_a else "")
                + f", {len(only_b)} in {name} only"
                + (f" (e.g. {only_b[0]!r})" if only_b else "")
                + ": evaluate both on the same store and --where"
            )
        for clip_id, entry in ref[SCORES].items():
            other = run[SCORES][clip_id]["label"]
            if entry["label"] != other:
                raise ActrecError(
                    f"{first} and {name} label clip {clip_id!r} differently ({entry['label']!r} vs {other!r}): "
                    "evaluate both on the same store"
                )


def _class_difference(a: dict, b: dict) -> str:
    ca, cb = a["classes"], b["classes"]
    if len(ca) != len(cb):
        return f"{len(ca)} classes vs {len(cb)}"
    i = next(i for i, (x, y) in enumerate(zip(ca, cb, strict=True)) if x != y)
    return f"class {i} is {ca[i]!r} vs {cb[i]!r}"


def fuse_scores(runs: list[dict], weights: list[float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(clip ids in the first run's order, fused scores (N, K) float64, labels (N,) int64): sum_i w_i * scores_i
    / sum_i w_i per clip. The runs are checked to cover the same clips and classes."""
    ids = list(runs[0][SCORES])
    classes = runs[0]["classes"]
    index = {c: k for k, c in enumerate(classes)}
    labels = np.array([index[runs[0][SCORES][i]["label"]] for i in ids], np.int64)
    fused = np.zeros((len(ids), len(classes)), np.float64)
    for run, weight in zip(runs, weights, strict=True):
        scores = np.array([run[SCORES][i]["scores"] for i in ids], np.float64)  # (N, K)
        if scores.shape != fused.shape:
            raise ActrecError(f"a run's scores have shape {scores.shape}, not {fused.shape} (clips, classes)")
        fused += weight * scores
    return ids, fused / sum(weights), labels


def fuse_runs(paths: list[Path], weights_text: str | None = None) -> dict:
    """The fused JSON: evaluate's metric keys (top1, top5, mean_class_acc, n_clips, per_class,
    confusion_matrix, loss), what was fused with which weights, and the fused per-clip scores."""
    if len(paths) < 2:
        raise ActrecError(f"fuse needs two or more evaluate JSON files, got {len(paths)}")
    weights = parse_weights(weights_text, len(paths))
    runs = [(str(p), load_run(p)) for p in paths]
    check_same_clips(runs)
    ids, fused, labels = fuse_scores([run for _, run in runs], weights)
    classes = runs[0][1]["classes"]
    metrics = classification_metrics(fused, labels, classes)
    loss = float(-np.mean(np.log(np.clip(fused[np.arange(len(ids)), labels], 1e-12, None)))) if ids else 0.0
    metrics.update(
        {
            "loss": loss,
            "model": "fused",
            "inputs": [
                {"eval": name, "model": run.get("model"), "weight": w}
                for (name, run), w in zip(runs, weights, strict=True)
            ],
            "classes": classes,
            SCORES: clip_scores(ids, labels, fused, classes),
        }
    )
    return metrics
