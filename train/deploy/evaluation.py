"""Scoring clips with a model: single-view validation during training, multi-view + flip testing after."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from train.checkpoint import LoadedModel
from train.sources.views import HeatmapViews, hflip, resize, to_model_input


@torch.no_grad()
def predict_loader(
    model: torch.nn.Module,
    loader,
    device: torch.device,
    *,
    scale: float,
    input_size: int,
    flip_permutation: list[int] | None = None,
    autocast: bool = False,
    on_batch=None,
    to_input=None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Average softmax over each clip's views (and their mirror images when flip_permutation is given), as
    PoseC3D's multi-clip testing. Returns probabilities (N, K), labels (N,) and the mean cross-entropy of the
    averaged probabilities. `to_input`: the source's eval_input (default: heatmap views at `input_size`)."""
    to_input = to_input or HeatmapViews(device, scale, input_size)
    model.eval()
    all_probs, all_labels = [], []
    for views, labels in loader:
        b, v = views.shape[:2]
        x = to_input(views)  # (B*V, C, T, S, S) heatmaps | (B*V, M, T, V, C) coordinates
        probs = score_views(model, x, flip_permutation, autocast)
        all_probs.append(probs.reshape(b, v, -1).mean(dim=1).float().cpu())
        all_labels.append(labels)
        if on_batch is not None:
            on_batch(b)
    probs = torch.cat(all_probs)
    labels = torch.cat(all_labels)
    loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), labels).item()
    return probs.numpy(), labels.numpy(), loss


def validate(
    model, loader, device, scale: float, input_size: int, classes, autocast: bool, to_input=None
) -> tuple[dict, dict]:
    """The epoch's validation row (val_loss, val_top1, val_top5, val_mean_class_acc) and the classification
    metrics it comes from (train/metrics.py: confusion matrix included)."""
    probs, labels, val_loss = predict_loader(
        model, loader, device, scale=scale, input_size=input_size, autocast=autocast, to_input=to_input
    )
    from train.metrics import classification_metrics

    m = classification_metrics(probs, labels, classes)
    row = {"val_loss": val_loss, "val_top1": m["top1"], "val_top5": m["top5"]}
    return row | {"val_mean_class_acc": m["mean_class_acc"]}, m


def score_views(
    model: torch.nn.Module, x: torch.Tensor, flip_permutation: list[int] | None, autocast: bool
) -> torch.Tensor:
    """(N, C, T, S, S) model inputs -> softmax (N, K), averaged with each view's mirror image when
    flip_permutation is given (left/right channels swapped): the one scoring of evaluate and predict."""
    probs = _softmax(model, x, autocast)
    if flip_permutation is not None:
        probs = (probs + _softmax(model, hflip(x, flip_permutation), autocast)) / 2
    return probs


def _softmax(model, x, autocast: bool) -> torch.Tensor:
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=autocast):
        logits = model(x)
    return torch.softmax(logits.float(), dim=1)


def evaluate_checkpoint(checkpoint: str | LoadedModel, store_path: str, **kw) -> dict:
    """PoseC3D-style testing of a checkpoint: `clips` uniformly spaced views per clip (+ mirror), averaged.
    The store is read under a shared lock, so no render replaces it meanwhile. `checkpoint` is a path or what
    `load_model` made of one (the CLI checks it before drawing progress).

    source "heatmaps": the fixed views of a heatmap store; "keypoints": the same views rendered from a
    keypoint store with the checkpoint's render settings (the values a heatmap store of them holds)."""
    from etl.stores.heatmap_store import reading_store

    with reading_store(store_path, "evaluation"):
        return _evaluate_checkpoint(checkpoint, store_path, **kw)


def _evaluate_checkpoint(
    checkpoint: str | LoadedModel,
    store_path: str,
    *,
    where: str | None,
    clips: int = 10,
    flip: bool = True,
    batch_size: int = 8,
    workers: int = 2,
    device: str = "auto",
    on_batch=None,
    source: str | None = None,
) -> dict:
    from etl.common.errors import ActrecError
    from etl.heatmaps.spec import RenderSpec
    from train.checkpoint import load_model
    from train.device import pick_device
    from train.sources import check_pairing, default_source, open_source
    from train.sources.loading import EpochSampler, make_loader, select_clips

    dev = pick_device(device)
    loaded = checkpoint if isinstance(checkpoint, LoadedModel) else load_model(checkpoint, dev)
    model, render = loaded.model.to(dev), loaded.render
    checkpoint = loaded.path
    source = source or default_source(model.consumes)
    check_pairing(loaded.model_name, model.consumes, source)
    coordinates = loaded.checkpoint.get("coordinates")
    store = open_source(
        source, store_path, RenderSpec.from_checkpoint(render) if render else None, coordinates
    )
    store.check_record(loaded.checkpoint, checkpoint)
    if store.classes != loaded.classes:
        raise ActrecError(
            f"{store_path} has classes {store.classes[:5]}..., the checkpoint "
            f"{loaded.classes[:5]}...: not the same label set"
        )
    rows = select_clips(store, where)
    dataset = store.dataset(rows, clip_len=loaded.clip_len, train=False, num_clips=clips)
    loader = make_loader(
        dataset,
        EpochSampler(len(dataset), shuffle=False, pad=False),
        batch_size=batch_size,
        workers=workers,
        device=dev,
    )
    scale, input_size = store.value_scale, int(render.get("input_size", 0))
    probs, labels, loss = predict_loader(
        model,
        loader,
        dev,
        scale=scale,
        input_size=input_size,
        to_input=store.eval_input(dev, scale, input_size),
        flip_permutation=store.flip_permutation if flip else None,
        autocast=dev.type == "cuda",
        on_batch=on_batch,
    )
    from train.metrics import classification_metrics, clip_scores

    metrics = classification_metrics(probs, labels, store.classes)
    metrics.update(
        {
            "loss": loss,
            "model": loaded.model_name,
            "checkpoint": str(checkpoint),
            "checkpoint_epoch": loaded.epoch,  # 0: a converted checkpoint
            "store": str(store_path),
            "source": source,
            "where": where,
            "clips": clips,
            # what was done: a graph model's coordinates are never flipped (flip_permutation None)
            "flip": flip and store.flip_permutation is not None,
            "clip_len": loaded.clip_len,
            # for `actrec-train fuse` (train/deploy/fuse.py): each clip's label and view-averaged probabilities
            # (K,), by clip id in store order
            "classes": list(store.classes),
            "clip_scores": clip_scores(rows["clip_id"], labels, probs, store.classes),
        }
    )
    return metrics


@torch.no_grad()
def attention_of_views(model, dataset, device, scale: float, input_size: int, n: int = 4):
    """(picks (N,) dataset indices, weights (N, T) float32): the attention over the frames of the first fixed
    view of n clips spread over `dataset` (for attention.png)."""
    model.eval()
    picks = np.linspace(0, len(dataset) - 1, num=min(n, len(dataset))).round().astype(int)
    views = torch.stack([dataset[int(i)][0][0] for i in picks])  # (N, T, C, S, S)
    x = resize(to_model_input(views.to(device), scale), input_size)
    _, weights = model(x, return_attention=True)
    return picks, weights.float().cpu().numpy()
