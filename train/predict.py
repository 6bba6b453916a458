"""`actrec-train predict`: pose file -> in-memory heatmaps (the checkpoint's render settings) -> top-k labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from etl.errors import ActrecError
from etl.heatmap_store import value_scale
from etl.poseclip import Reject
from etl.readers import ReadOptions, read_source
from etl.render import RenderParams, render_clip
from etl.skeleton import get_layout
from etl.validate import validate_clip
from train.augment import hflip, resize, to_model_input
from train.checkpoint import load_checkpoint
from train.fit import pick_device
from train.models import model_from_config
from train.sampling import sample_test


@dataclass
class Prediction:
    clip_id: str
    top: list[tuple[str, float]]  # (label name, probability), most likely first


def predict_file(
    checkpoint: str | Path,
    pose_file: Path,
    *,
    fmt: str = "auto",
    top_k: int = 5,
    clips: int = 10,
    flip: bool = True,
    device: str = "cpu",
) -> list[Prediction]:
    device = pick_device(device)
    ckpt = load_checkpoint(checkpoint, map_location=device)
    render = ckpt["render"]
    layout = get_layout(render["layout"])
    params = RenderParams(
        channels=render["channel_preset"],
        size=int(render["size"]),
        sigma=float(render["sigma"]),
        padding=float(render["padding"]),
        eps=float(render["eps"]),
        dtype=render["dtype"],
    )
    model = model_from_config(ckpt["model_name"], ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    classes = list(ckpt["classes"])
    clip_len = int(ckpt["fit_config"]["clip_len"])
    scale = value_scale(params.dtype)
    results = []
    for item in read_source([Path(pose_file)], fmt, ReadOptions(layout=layout)):
        clip = item if isinstance(item, Reject) else validate_clip(item, layout, require_label=False)
        if isinstance(clip, Reject):
            raise ActrecError(f"cannot predict {clip.clip_id} ({clip.source}): {clip.reason}")
        heatmaps, _ = render_clip(clip.keypoints, clip.scores, (clip.img_h, clip.img_w), params, layout)
        frames = sample_test(len(heatmaps), clip_len, clips)  # (V, T)
        views = torch.from_numpy(heatmaps[frames])  # (V, T, C, S, S)
        with torch.no_grad():
            x = resize(to_model_input(views.to(device), scale), int(render["input_size"]))
            probs = torch.softmax(model(x).float(), dim=1)
            if flip:
                probs = (
                    probs + torch.softmax(model(hflip(x, render["flip_permutation"])).float(), dim=1)
                ) / 2
        mean = probs.mean(dim=0).cpu().numpy()
        order = np.argsort(-mean)[: min(top_k, len(classes))]
        results.append(Prediction(clip.clip_id, [(classes[i], float(mean[i])) for i in order]))
    if not results:
        raise ActrecError(f"no clip found in {pose_file} (format {fmt})")
    return results
