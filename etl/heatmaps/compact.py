"""Spatial normalisation of a clip: MMAction2's PoseCompact as one crop box, then the map onto a square canvas.

The PoseC3D val/test geometry is PoseCompact(hw_ratio=1, allow_imgpad=True) -> Resize(scale=(-1, size)) ->
CenterCrop(size). `compact_box` is the first step as a box; `to_canvas` is the other two as one affine map, with
the anchor's float32 rounding order, so that the rendered heatmaps match the anchor bit for bit.

Differences from the anchor, on purpose:
- the box is computed over whatever frames the caller passes: we cache whole clips, so over the whole clip
  (the anchor sees only the 48 sampled frames; pass those frames for parity);
- a keypoint is valid when both coordinates are finite and its score >= eps. The anchor's rule is "coordinate
  != 0" per axis, scores ignored, which treats a real x = 0 or y = 0 (a joint clipped to the image border) as
  missing, leaves it out of the box and does not shift it with the box. `zero_is_missing=True` reproduces the
  anchor's box for parity tests; `to_canvas` always moves every coordinate (NaN stays NaN).
"""

from __future__ import annotations

import numpy as np

__all__ = ["compact_box", "to_canvas"]


def compact_box(
    keypoints: np.ndarray,
    scores: np.ndarray,
    *,
    padding: float = 0.25,
    hw_ratio: float | None = 1.0,
    threshold: float = 10.0,
    eps: float = 1e-4,
    img_hw: tuple[int, int],
    zero_is_missing: bool = False,
) -> np.ndarray:
    """The PoseCompact crop box [x0, y0, x1, y1] (float64 holding integers) of keypoints (M, T, V, 2).

    The tight box of all valid keypoints of all persons and frames, grown by `padding` about its centre, made
    hw_ratio-shaped by growing the short side (it may extend past the image: allow_imgpad=True), bounds truncated
    with int() like the anchor. If the tight box is narrower than `threshold` in x or y (or nothing is valid),
    the whole image [0, 0, w, h] (the anchor leaves the sample unchanged then).
    """
    kp = np.asarray(keypoints, np.float32)  # the anchor's PoseDecode casts to float32 first
    h, w = (int(v) for v in img_hw)
    xs, ys = kp[..., 0], kp[..., 1]  # (M, T, V)
    if zero_is_missing:  # MMAction2's rule, per axis: NaN -> 0 -> missing; scores are not looked at
        xs, ys = xs[xs != 0], ys[ys != 0]  # NaN != 0 is True: drop NaN explicitly below
        xs, ys = xs[~np.isnan(xs)], ys[~np.isnan(ys)]
    else:
        sc = np.asarray(scores, np.float32)
        ok = np.isfinite(xs) & np.isfinite(ys) & (sc >= eps)  # (M, T, V)
        xs, ys = xs[ok], ys[ok]
    if xs.size == 0 or ys.size == 0:
        return np.array([0.0, 0.0, w, h])
    # float32 min/max and their float32 sum/difference, then float64, as numpy 1.x evaluates the anchor.
    min_x, max_x, min_y, max_y = xs.min(), xs.max(), ys.min(), ys.max()
    if max_x - min_x < threshold or max_y - min_y < threshold:
        return np.array([0.0, 0.0, w, h])
    cx, cy = float(max_x + min_x) / 2, float(max_y + min_y) / 2
    half_w = float(max_x - min_x) / 2 * (1 + padding)
    half_h = float(max_y - min_y) / 2 * (1 + padding)
    if hw_ratio is not None:
        half_h = max(hw_ratio * half_w, half_h)
        half_w = max(1 / hw_ratio * half_h, half_w)
    return np.array([int(cx - half_w), int(cy - half_h), int(cx + half_w), int(cy + half_h)], np.float64)


def to_canvas(keypoints: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Keypoints (M, T, V, 2) in image pixels -> float32 pixels of a size x size canvas (a new array).

    Crop to `box` (PoseCompact's shift), scale the short side to `size` (Resize(scale=(-1, size)), sizes rounded
    as mmcv does), then centre-crop to size x size (a shift by (new - size) // 2; 0 for the square boxes of
    hw_ratio=1 up to int() rounding, about half the excess for the whole-image fallback). NaN stays NaN.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    w, h = x1 - x0, y1 - y0
    if w <= 0 or h <= 0 or size <= 0:
        raise ValueError(
            f"box {[x0, y0, x1, y1]} must have a positive width and height and size ({size}) be > 0"
        )
    sf = size / min(w, h)
    new_w, new_h = int(w * sf + 0.5), int(h * sf + 0.5)
    scale = np.array([new_w / w, new_h / h], np.float32)  # Resize's float32 scale_factor
    crop = np.array([(new_w - size) // 2, (new_h - size) // 2], np.float32)  # CenterCrop's left, top
    origin = np.array([x0, y0], np.float32)  # exact for |coordinate| < 2^24
    kp = np.asarray(keypoints, np.float32)
    # Each step rounds to float32 once, in the anchor's order (its crop step runs in float64, which is exact
    # for a float32 minus an integer, and GeneratePoseTarget then rounds to float32: the same single rounding).
    out = kp - origin
    out *= scale
    out -= crop
    return out
