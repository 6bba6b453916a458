"""`actrec-train predict`: pose file -> in-memory heatmaps (the checkpoint's render settings) -> top-k labels.

One label per clip by default; `--window W --stride S` labels windows over time instead (train/windows.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from etl.errors import ActrecError
from etl.heatmap_store import value_scale
from etl.poseclip import PoseClip, Reject
from etl.readers import ReadOptions, read_source
from etl.render import render_clip
from etl.skeleton import Layout, get_layout
from etl.validate import validate_clip
from train.augment import resize, to_model_input
from train.checkpoint import LoadedModel, load_model, render_params
from train.device import pick_device
from train.evaluation import score_views
from train.sampling import sample_test


@dataclass
class Prediction:
    clip_id: str
    top: list[tuple[str, float]]  # (label name, probability), most likely first


def read_clips(pose_file: Path, fmt: str, layout: Layout) -> Iterator[PoseClip]:
    """Validated clips of a pose file; the first unusable clip is an error (predict has nothing to skip to)."""
    found = False
    for item in read_source([Path(pose_file)], fmt, ReadOptions(layout=layout)):
        clip = item if isinstance(item, Reject) else validate_clip(item, layout, require_label=False)
        if isinstance(clip, Reject):
            raise ActrecError(f"cannot predict {clip.clip_id} ({clip.source}): {clip.reason}")
        found = True
        yield clip
    if not found:
        raise ActrecError(f"no clip found in {pose_file} (format {fmt})")


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


def predict_file(
    checkpoint: str | Path,
    pose_file: Path,
    *,
    fmt: str = "auto",
    top_k: int = 5,
    clips: int = 10,
    flip: bool = True,
    device: str = "auto",
) -> list[Prediction]:
    dev = pick_device(device)
    loaded = load_model(checkpoint, dev)
    layout = get_layout(loaded.render["layout"])
    params = render_params(loaded.render)
    classes = loaded.classes
    results = []
    for clip in read_clips(pose_file, fmt, layout):
        heatmaps, _ = render_clip(clip.keypoints, clip.scores, (clip.img_h, clip.img_w), params, layout)
        frames = sample_test(len(heatmaps), loaded.clip_len, clips)  # (V, T)
        mean = view_probabilities(loaded, heatmaps[frames], dev, flip=flip).mean(dim=0).numpy()
        order = np.argsort(-mean)[: min(top_k, len(classes))]
        results.append(Prediction(clip.clip_id, [(classes[i], float(mean[i])) for i in order]))
    return results
