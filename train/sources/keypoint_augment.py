"""PoseC3D's train geometry on keypoints (`--source keypoints`): the views are rendered after it, never resampled.

MMAction2's NTU/Penn train pipeline, in coordinate space, on the frames UniformSampleFrames chose:

    PoseCompact(hw_ratio=1, allow_imgpad=True)  box over the sampled frames (etl.heatmaps.compact.compact_box)
    Resize(scale=(-1, size))                     short side -> `size` (the store's size; no centre crop)
    RandomResizedCrop(area 0.56-1, 3/4-4/3)      a whole-pixel box, redrawn up to 10 times (`draw_crop_box`)
    Resize((out, out), keep_ratio=False)         the crop -> the model's input size
    Flip(0.5, left_kp, right_kp)                 x -> out - x (MMAction2's rule) and left/right joints swapped

Every step maps coordinates (M, T, V, 2) float32 in the anchor's rounding order; NaN (a missing joint) stays NaN
and scores travel with their joints. The random draws come from one RandomState per (seed, epoch, clip).
"""

from __future__ import annotations

import math

import numpy as np

from etl.heatmaps.compact import compact_box
from train.sources.crop_rule import AREA, FLIP_PROB, MAX_ATTEMPTS, RATIO


def draw_crop_box(
    img_h: int,
    img_w: int,
    rng: np.random.RandomState,
    area: tuple[float, float] = AREA,
    ratio: tuple[float, float] = RATIO,
    max_attempts: int = MAX_ATTEMPTS,
) -> tuple[int, int, int, int]:
    """A crop box (x0, y0, x1, y1) in whole pixels, as MMAction2's RandomResizedCrop draws it: `max_attempts`
    candidates (area fraction uniform, aspect ratio log-uniform, sides rounded); the first that fits the image
    is placed at a uniform integer offset; when none fits, the centred min(h, w) square."""
    log_r = rng.uniform(math.log(ratio[0]), math.log(ratio[1]), size=max_attempts)
    target = rng.uniform(*area, size=max_attempts) * (img_h * img_w)
    r = np.exp(log_r)
    cw = np.round(np.sqrt(target * r)).astype(np.int64)
    ch = np.round(np.sqrt(target / r)).astype(np.int64)
    for w, h in zip(cw, ch, strict=True):
        if w <= img_w and h <= img_h:
            x0 = int(rng.randint(0, img_w - w + 1))
            y0 = int(rng.randint(0, img_h - h + 1))
            return x0, y0, x0 + int(w), y0 + int(h)
    side = min(img_h, img_w)
    x0, y0 = (img_w - side) // 2, (img_h - side) // 2
    return x0, y0, x0 + side, y0 + side


def resize_short_side(box: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """PoseCompact's shift + Resize(scale=(-1, size)) of a box: (origin (2,), scale (2,) float32, (h, w))."""
    x0, y0, x1, y1 = (int(v) for v in box)
    w, h = x1 - x0, y1 - y0
    sf = size / min(w, h)
    new_w, new_h = int(w * sf + 0.5), int(h * sf + 0.5)  # mmcv's rescale_size rounding
    scale = np.array([new_w / w, new_h / h], np.float32)
    return np.array([x0, y0], np.float32), scale, (new_h, new_w)


def train_geometry(
    keypoints: np.ndarray,
    scores: np.ndarray,
    img_hw: tuple[int, int],
    *,
    size: int,
    out_size: int,
    crop: tuple[int, int, int, int] | None,
    flip: bool,
    joint_flip: tuple[int, ...] | list[int],
    padding: float = 0.25,
    eps: float = 1e-4,
    zero_is_missing: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Keypoints (M, T, V, 2) of the sampled frames in image pixels -> (M, T, V, 2) float32 pixels of an
    out_size x out_size view, and the scores (M, T, V) reordered with the flip. `crop` is a box in the resized
    image (None: the whole resized image). Returns also {"box", "image_hw", "crop"} for inspection."""
    box = compact_box(
        keypoints, scores, padding=padding, eps=eps, img_hw=img_hw, zero_is_missing=zero_is_missing
    )
    origin, scale, (h, w) = resize_short_side(box, size)
    kp = np.asarray(keypoints, np.float32) - origin  # PoseCompact (float32, exact for integer origins)
    kp *= scale  # Resize(scale=(-1, size))
    x0, y0, x1, y1 = crop if crop is not None else (0, 0, w, h)
    # MMAction2 subtracts the int64 crop origin, which promotes to float64; the rest stays float64 until
    # GeneratePoseTarget's float32 cast (this order reproduces the anchor's train keypoints bit for bit).
    kp64 = kp.astype(np.float64) - np.array([x0, y0], np.int64)  # RandomResizedCrop
    kp64 *= np.array([out_size / (x1 - x0), out_size / (y1 - y0)], np.float32)  # Resize(keep_ratio=False)
    sc = np.asarray(scores, np.float32)
    if flip:
        kp64[..., 0] = out_size - kp64[..., 0]
        order = list(joint_flip)
        kp64, sc = kp64[:, :, order], sc[:, :, order]
    out = np.ascontiguousarray(kp64, dtype=np.float32)
    return out, np.ascontiguousarray(sc), {"box": box, "image_hw": (h, w), "crop": crop}


def random_train_view(
    keypoints: np.ndarray,
    scores: np.ndarray,
    img_hw: tuple[int, int],
    rng: np.random.RandomState,
    *,
    size: int,
    out_size: int,
    joint_flip: tuple[int, ...] | list[int],
    padding: float = 0.25,
    eps: float = 1e-4,
    flip_prob: float = FLIP_PROB,
) -> tuple[np.ndarray, np.ndarray]:
    """PoseC3D's random train geometry of one clip's sampled frames: (M, T, V, 2) view pixels, (M, T, V)."""
    box = compact_box(keypoints, scores, padding=padding, eps=eps, img_hw=img_hw)
    _, _, (h, w) = resize_short_side(box, size)
    crop = draw_crop_box(h, w, rng)
    flip = bool(rng.rand() < flip_prob)
    kp, sc, _ = train_geometry(
        keypoints,
        scores,
        img_hw,
        size=size,
        out_size=out_size,
        crop=crop,
        flip=flip,
        joint_flip=joint_flip,
        padding=padding,
        eps=eps,
    )
    return kp, sc
