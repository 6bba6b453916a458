"""`actrec-etl show`: a filmstrip of one clip's heatmaps, the picture a person looks at to trust the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from etl.common.errors import ActrecError
from etl.stores.heatmap_store import HeatmapStore, value_scale
from etl.stores.keypoint_store import KIND as KEYPOINT_KIND
from etl.stores.keypoint_store import KeypointStore

JOINT_RGB = np.array([1.0, 0.55, 0.1])  # joints orange
LIMB_RGB = np.array([0.1, 0.75, 1.0])  # limbs cyan


def filmstrip_rgb(frames: np.ndarray, channels: list[str]) -> np.ndarray:
    """(K, C, S, S) float heatmaps -> (K, S, S, 3) RGB: joints and limbs each max-projected and coloured."""
    joint = np.array([c.startswith("joint:") for c in channels])
    limb = ~joint
    rgb = np.zeros(frames.shape[:1] + frames.shape[2:] + (3,), np.float32)
    if joint.any():
        rgb += frames[:, joint].max(axis=1)[..., None] * JOINT_RGB
    if limb.any():
        rgb += frames[:, limb].max(axis=1)[..., None] * LIMB_RGB
    return np.clip(rgb, 0.0, 1.0)


def save_filmstrip(
    store_path: str | Path, clip_id: str, out: str | Path, *, n_frames: int = 8, cols: int = 8
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keypoints = _is_keypoint_store(Path(store_path))
    store = KeypointStore.open(store_path) if keypoints else HeatmapStore.open(store_path)
    rows = store.table.index[store.table["clip_id"] == clip_id]
    if not len(rows):
        sample = ", ".join(store.table["clip_id"].head(5))
        raise ActrecError(
            f"clip {clip_id!r} is not in {store_path} (e.g. {sample}); "
            'list ids with `actrec-etl query STORE "..."`'
        )
    index = int(rows[0])
    row = store.table.iloc[index]
    t = int(row["n_frames"])
    picks = np.unique(np.linspace(0, t - 1, num=min(n_frames, t)).round().astype(np.int64))
    if keypoints:
        frames, channels = _render_keypoints(store, index, row, picks)
        how = "rendered with render's defaults, joints orange, limbs cyan"
    else:
        scale = value_scale(store.spec.dtype)
        frames, channels = (
            store.read_clip(index, picks).astype(np.float32) / scale,
            store.channels,
        )  # (K, C, S, S)
        how = "joints orange, limbs cyan"
    rgb = filmstrip_rgb(frames, channels)
    cols = min(cols, len(picks))
    nrows = -(-len(picks) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(1.9 * cols, 2.1 * nrows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, f in zip(axes.flat, rgb, picks, strict=False):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(f"frame {f}", fontsize=8)
    fig.suptitle(
        f"{clip_id}: {row['label_name']} ({row['split']}, {t} frames) - {how}",
        fontsize=10,
    )
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, facecolor="white")
    plt.close(fig)
    return out


def _is_keypoint_store(path: Path) -> bool:
    """From the store's zarr.json attrs (the stores' open() check everything else)."""
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and (meta.get("attributes") or {}).get("kind") == KEYPOINT_KIND


def _render_keypoints(
    store: KeypointStore, index: int, row, picks: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """A keypoint store's clip as heatmaps (K, C, S, S) in [0, 1], rendered in memory with `actrec-etl render`'s
    default settings (a heatmap store shows what training reads; this shows what rendering would give)."""
    from etl.heatmaps.clip import render_clip
    from etl.heatmaps.spec import RenderSpec

    spec = RenderSpec()
    coords, scores = store.read_clip(index)  # (M, T, V, 2), (M, T, V)
    heatmaps, _ = render_clip(
        coords[:, picks], scores[:, picks], (int(row["img_h"]), int(row["img_w"])), spec, store.layout
    )
    return heatmaps.astype(np.float32) / value_scale(spec.dtype), store.layout.channel_names(spec.channels)
