"""`actrec-train predict`: pose file -> in-memory heatmaps (the checkpoint's render settings), or a graph model's
coordinate views (its checkpoint's `coordinates` record) -> top-k labels.

One label per clip by default; `--window W --stride S` labels windows over time instead (train/deploy/windows.py).
A clip's true label, when its file or a `--labels` manifest has one, rides along for the summary's accuracy;
the attention model also gives its per-frame attention weights.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from etl.common.errors import ActrecError
from etl.heatmaps.clip import render_clip
from etl.heatmaps.spec import RenderSpec
from etl.pose.clip import PoseClip, Reject
from etl.pose.clip_checks import validate_clip
from etl.pose.layout_def import stored_layout
from etl.pose.skeleton import Layout
from etl.readers import ReadOptions, detect_format, read_source
from etl.stores.heatmap_store import value_scale
from train.checkpoint import LoadedModel, load_model
from train.deploy.evaluation import score_views
from train.device import pick_device
from train.sources.coordinates import pose_views
from train.sources.sampling import sample_test
from train.sources.views import hflip, resize, to_model_input


@dataclass
class Prediction:
    clip_id: str
    top: list[tuple[str, float]]  # (label name, probability), most likely first
    source: str = ""  # the file the clip was read from
    true_label: str | None = None  # from the file or the --labels manifest, when it has one
    # cnn_lstm_attn: (n_frames,) the attention weight of each frame of the clip, averaged over the views
    # (and their mirrors); sums to 1; frames no view sampled get 0
    attention: list[float] | None = None


def resolve_format(pose_file: Path, fmt: str) -> str:
    """The format `--format auto` stands for (the reader's detection), else `fmt` unchanged."""
    return detect_format([Path(pose_file)]) if fmt == "auto" else fmt


def accuracy(preds: list[Prediction]) -> tuple[int, int]:
    """(correct, labelled): top-1 hits among the predictions whose clip has a true label."""
    labelled = [p for p in preds if p.true_label is not None]
    return sum(p.top[0][0] == p.true_label for p in labelled), len(labelled)


def read_clips(pose_file: Path, fmt: str, layout: Layout, labels: Path | None = None) -> Iterator[PoseClip]:
    """Validated clips of a pose file; the first unusable clip is an error (predict has nothing to skip to)."""
    found = False
    for item in read_source([Path(pose_file)], fmt, ReadOptions(layout=layout, labels_csv=labels)):
        clip = item if isinstance(item, Reject) else validate_clip(item, layout, require_label=False)
        if isinstance(clip, Reject):
            raise ActrecError(
                f"cannot predict {clip.clip_id} ({clip.source}): {_layout_hint(clip.reason, layout)}"
            )
        found = True
        yield clip
    if not found:
        raise ActrecError(f"no clip found in {pose_file} (format {fmt})")


def _layout_hint(reason: str, layout: Layout) -> str:
    """The readers' hint names ingest's `--layout`; predict reads in the checkpoint's layout, which no option
    changes (a model knows one skeleton), so say that instead."""
    if "--layout " not in reason:
        return reason
    return (
        reason.replace("--layout ", "layout ")
        + f"; this checkpoint was trained on {layout.name}: use a checkpoint trained on the file's layout"
    )


@torch.no_grad()
def clip_attention(
    loaded: LoadedModel,
    views: np.ndarray,
    frames: np.ndarray,
    n_frames: int,
    device: torch.device,
    *,
    flip: bool,
) -> list[float] | None:
    """cnn_lstm_attn's attention over the clip's frames (see Prediction.attention); None for other models.

    views: (V, T, C, S, S) heatmaps of the sampled frames (V, T)."""
    model = loaded.model
    if not model.has_attention:
        return None
    render = loaded.render
    x = resize(
        to_model_input(torch.from_numpy(views).to(device), value_scale(render["dtype"])),
        int(render["input_size"]),
    )
    _, weights = model(x, return_attention=True)  # (V, T)
    if flip:
        _, mirrored = model(hflip(x, render["flip_permutation"]), return_attention=True)
        weights = (weights + mirrored) / 2
    per_frame = np.zeros(n_frames)
    np.add.at(per_frame, frames.reshape(-1), weights.float().cpu().numpy().reshape(-1))
    return (per_frame / len(frames)).tolist()


@torch.no_grad()
def view_probabilities(
    loaded: LoadedModel, views: np.ndarray, device: torch.device, *, flip: bool, batch: int = 16
) -> torch.Tensor:
    """(V, T, C, S, S) heatmap views -> softmax (V, K), averaged with the mirrored views when flip."""
    render = loaded.render
    scale = value_scale(render["dtype"])
    flip_permutation = render["flip_permutation"] if flip else None
    out = []
    for part in torch.from_numpy(views).split(batch):
        x = resize(to_model_input(part.to(device), scale), int(render["input_size"]))  # (b, C, T, S', S')
        out.append(score_views(loaded.model, x, flip_permutation, autocast=device.type == "cuda").cpu())
    return torch.cat(out)


class ClipScorer:
    """How a checkpoint scores a pose clip: the one path of predict (whole clips) and predict --window (each
    window a clip of its own). A heatmap model's `clips` test views are drawn with its render settings
    (render_clip: the clip's own PoseCompact box, then PoseC3D's test sampling) and scored with their mirror
    images when `flip`; a graph model's are the coordinate views its checkpoint's `coordinates` record says
    (train/sources/coordinates.py pose_views, as evaluate reads a keypoint store), unflipped as evaluate tests
    them. The layout (built-in or a stored definition) is the checkpoint's: the pose files are read in it."""

    def __init__(self, loaded: LoadedModel, device: torch.device):
        self.loaded, self.device = loaded, device
        if loaded.render:
            self.layout = stored_layout(loaded.render, loaded.path)
            self.spec = RenderSpec.from_checkpoint(loaded.render)
        else:  # a graph model: its checkpoint's views are coordinates, not heatmaps
            self.layout = stored_layout(loaded.checkpoint["coordinates"], loaded.path)

    @torch.no_grad()
    def score(
        self,
        keypoints: np.ndarray,
        scores: np.ndarray,
        img_hw: tuple[int, int],
        clips: int,
        *,
        flip: bool,
        attention: bool = False,
    ) -> tuple[np.ndarray, list[float] | None]:
        """keypoints (M, T, V, 2) in source pixels + scores (M, T, V) -> (softmax (K,) averaged over the views,
        cnn_lstm_attn's attention over the T frames when `attention` (Prediction.attention), else None)."""
        loaded, device = self.loaded, self.device
        if not loaded.render:
            record = loaded.checkpoint["coordinates"]
            views = pose_views(keypoints, scores, img_hw, record, self.layout, loaded.clip_len, clips)
            x = torch.from_numpy(views).to(device)  # (V, M, clip_len, J, C)
            probs = score_views(loaded.model, x, None, autocast=device.type == "cuda")  # (V, K)
            return probs.mean(dim=0).cpu().numpy(), None
        heatmaps, _ = render_clip(keypoints, scores, img_hw, self.spec, self.layout)  # (T, C, S, S)
        frames = sample_test(len(heatmaps), loaded.clip_len, clips)  # (V, clip_len)
        mean = view_probabilities(loaded, heatmaps[frames], device, flip=flip).mean(dim=0).numpy()
        if not attention:
            return mean, None
        return mean, clip_attention(loaded, heatmaps[frames], frames, len(heatmaps), device, flip=flip)


def predict_file(
    checkpoint: str | Path,
    pose_file: Path,
    *,
    fmt: str = "auto",
    top_k: int = 5,
    clips: int = 10,
    flip: bool = True,
    device: str = "auto",
    labels: Path | None = None,
) -> list[Prediction]:
    dev = pick_device(device)
    loaded = load_model(checkpoint, dev)
    scorer = ClipScorer(loaded, dev)
    classes = loaded.classes
    results = []
    for clip in read_clips(pose_file, fmt, scorer.layout, labels):
        mean, attention = scorer.score(
            clip.keypoints, clip.scores, (clip.img_h, clip.img_w), clips, flip=flip, attention=True
        )
        order = np.argsort(-mean)[: min(top_k, len(classes))]
        true = clip.label_name if clip.label_name is not None else _class_name(clip.label, classes)
        top = [(classes[i], float(mean[i])) for i in order]
        results.append(
            Prediction(clip.clip_id, top, source=clip.source, true_label=true, attention=attention)
        )
    return results


def _class_name(label: int | None, classes: list[str]) -> str | None:
    """A numeric label's name in the checkpoint's class list (files such as PYSKL pickles carry numbers only)."""
    if label is None or not 0 <= label < len(classes):
        return None
    return classes[label]


def write_predictions(preds: list[Prediction], out: Path, meta: dict) -> None:
    """`--out`: JSON (everything, attention included) or CSV (one row per clip), chosen by the suffix."""
    suffix = out.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise ActrecError(f"--out {out}: use a .csv or .json file")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        out.write_text(predictions_json(preds, meta) + "\n")
        return
    k = max(len(p.top) for p in preds)
    header = ["file", "clip_id", "label", "probability", "true_label"]
    header += [f"{kind}_{i}" for i in range(1, k + 1) for kind in ("top", "p")]
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for p in preds:
            top = [v for name, prob in p.top for v in (name, f"{prob:.6f}")]
            writer.writerow(
                [p.source, p.clip_id, p.top[0][0], f"{p.top[0][1]:.6f}", p.true_label or "", *top]
            )


def predictions_json(preds: list[Prediction], meta: dict) -> str:
    correct, labelled = accuracy(preds)
    doc = {
        **meta,
        "n_clips": len(preds),
        "n_labelled": labelled,
        "accuracy": correct / labelled if labelled else None,
        "clips": [
            {
                "file": p.source,
                "clip_id": p.clip_id,
                "label": p.top[0][0],
                "probability": p.top[0][1],
                "true_label": p.true_label,
                "top": [{"label": name, "probability": prob} for name, prob in p.top],
                **({"attention": p.attention} if p.attention is not None else {}),
            }
            for p in preds
        ],
    }
    return json.dumps(doc, indent=2)
