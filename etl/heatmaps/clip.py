"""One clip's heatmaps, exactly as `actrec-etl render` stores them: arrays in, arrays out, no I/O."""

from __future__ import annotations

import os
import threading
from contextlib import nullcontext

import etl.heatmaps.numba_setup  # noqa: F401  (sets the threading layer read below, before numba loads)

# isort: split
import numpy as np

from etl.heatmaps.compact import compact_box, to_canvas
from etl.heatmaps.spec import RenderSpec
from etl.pose.skeleton import Layout

# Without TBB (a broken install), numba's fallback layer aborts when two threads run kernels at once: serialise.
_KERNEL_LOCK = threading.Lock() if os.environ.get("NUMBA_THREADING_LAYER") != "tbb" else nullcontext()


def render_clip(
    keypoints: np.ndarray,
    scores: np.ndarray,
    img_hw: tuple[int, int],
    spec: RenderSpec,
    layout: Layout,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One clip's heatmaps, exactly as stored: PoseCompact box -> canvas -> kernels. keypoints (M, T, V, 2)
    in source pixels, scores (M, T, V). Fills `out` (T, C, S, S) of spec.dtype (allocated when None);
    returns (out, crop box [x0, y0, x1, y1]). `predict` uses it to render new poses like the training data."""
    if out is None:
        n_channels = len(layout.channel_names(spec.channels))
        out = np.empty((keypoints.shape[1], n_channels, spec.size, spec.size), dtype=spec.dtype)
    box = clip_box(keypoints, scores, img_hw, spec)
    render_frames(keypoints, scores, box, spec, layout, out)
    return out, box


def clip_box(
    keypoints: np.ndarray, scores: np.ndarray, img_hw: tuple[int, int], spec: RenderSpec
) -> np.ndarray:
    """The clip's crop box [x0, y0, x1, y1]: over ALL its frames, keypoints (M, T, V, 2), scores (M, T, V)."""
    return compact_box(keypoints, scores, padding=spec.padding, eps=spec.eps, img_hw=img_hw)


def render_frames(
    keypoints: np.ndarray,
    scores: np.ndarray,
    box: np.ndarray,
    spec: RenderSpec,
    layout: Layout,
    out: np.ndarray,
) -> None:
    """Fill `out` (T', C, S, S) with the heatmaps of frames keypoints (M, T', V, 2), scores (M, T', V) under the
    clip's `box` (`clip_box` of the whole clip). Frames are independent given the box, so any frame range of a
    clip renders exactly as the same frames of `render_clip` do (a long clip is rendered piece by piece)."""
    from etl.heatmaps.kernels import render_heatmaps  # numba loads (and compiles) on the first render only

    canvas = to_canvas(keypoints, box, spec.size)  # (M, T', V, 2) in output pixels
    limbs = spec.limbs(layout)
    limbs = np.asarray(limbs, np.int64) if limbs is not None else None
    with _KERNEL_LOCK:
        render_heatmaps(
            canvas, scores, out, with_joints=spec.with_joints, limbs=limbs, sigma=spec.sigma, eps=spec.eps
        )
