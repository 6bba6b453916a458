"""Spatial augmentation of the cached heatmaps on the device, batched (`--source heatmaps`).

PoseC3D's train geometry (RandomResizedCrop area 0.56-1, ratio 3/4-4/3, resize, horizontal flip with the
left/right channel swap) is applied to the cached heatmaps with one affine grid_sample per batch, instead of to
keypoints before rendering (that is `--source keypoints`: train/sources/keypoint_augment.py). Crop boxes are drawn
as MMAction2 draws them (`crop_boxes`: redrawn when they do not fit, never clamped). A flip mirrors pixel x to
S-1-x and swaps channels with the store's permutation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from train.sources.crop_rule import AREA, FLIP_PROB, MAX_ATTEMPTS, RATIO


def _warp(x: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Resample (B, C, T, H, W) with per-sample affine maps theta (B, 2, 3) to (B, C, T, size, size)."""
    b, c, t, h, w = x.shape
    flat = x.reshape(b, c * t, h, w)
    grid = F.affine_grid(theta, [b, c * t, size, size], align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(b, c, t, size, size)


def crop_boxes(
    b: int,
    img_h: int,
    img_w: int,
    *,
    generator: torch.Generator,
    area: tuple[float, float] = AREA,
    ratio: tuple[float, float] = RATIO,
    max_attempts: int = MAX_ATTEMPTS,
) -> torch.Tensor:
    """(B, 4) int64 crop boxes [x0, y0, x1, y1] in pixels, drawn as MMAction2's RandomResizedCrop: up to
    `max_attempts` (area, log-ratio) candidates rounded to whole pixels, the first that fits the image wins
    (redrawn, never clamped), at a uniform integer offset; if none fits, the centred min(h, w) square."""
    log_r = torch.empty(b, max_attempts).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    target = torch.empty(b, max_attempts).uniform_(*area, generator=generator) * (img_h * img_w)
    r = torch.exp(log_r)
    cw = torch.round(torch.sqrt(target * r)).long()  # (B, attempts)
    ch = torch.round(torch.sqrt(target / r)).long()
    fits = (cw <= img_w) & (ch <= img_h)
    first = fits.long().argmax(dim=1, keepdim=True)  # index of the first candidate that fits (0 if none)
    w, h = cw.gather(1, first)[:, 0], ch.gather(1, first)[:, 0]
    ux, uy = (
        torch.rand(b, generator=generator, dtype=torch.float64),
        torch.rand(b, generator=generator, dtype=torch.float64),
    )
    x0 = (ux * (img_w - w + 1)).floor().long()  # uniform integer in [0, img_w - w]
    y0 = (uy * (img_h - h + 1)).floor().long()
    side = min(img_h, img_w)
    none = ~fits.any(dim=1)
    w, h = torch.where(none, side, w), torch.where(none, side, h)
    x0 = torch.where(none, (img_w - side) // 2, x0)
    y0 = torch.where(none, (img_h - side) // 2, y0)
    return torch.stack([x0, y0, x0 + w, y0 + h], dim=1)


def random_resized_crop_flip(
    x: torch.Tensor,
    *,
    size: int,
    flip_permutation: list[int] | None,
    generator: torch.Generator,
    area: tuple[float, float] = AREA,
    ratio: tuple[float, float] = RATIO,
    flip_prob: float = FLIP_PROB,
) -> torch.Tensor:
    """(B, C, T, S, S) -> (B, C, T, size, size). Crops are whole-pixel boxes drawn by `crop_boxes` (MMAction2's
    rule); random numbers come from `generator` (CPU) so a seeded run draws the same crops on any device."""
    b, h_img, w_img = x.shape[0], x.shape[-2], x.shape[-1]
    box = crop_boxes(b, h_img, w_img, generator=generator, area=area, ratio=ratio).double()
    # A pixel box [x0, x1) in grid_sample's align_corners=False coordinates: centre and half-extent in [-1, 1].
    w = (box[:, 2] - box[:, 0]) / w_img
    h = (box[:, 3] - box[:, 1]) / h_img
    cx = (box[:, 0] + box[:, 2]) / w_img - 1
    cy = (box[:, 1] + box[:, 3]) / h_img - 1
    flip = draw_flips(b, generator=generator, flip_prob=flip_prob, flip_permutation=flip_permutation)
    return crop_flip(x, (w, h, cx, cy), flip, size=size, flip_permutation=flip_permutation)


def draw_flips(
    b: int, *, generator: torch.Generator, flip_prob: float, flip_permutation: list[int] | None
) -> torch.Tensor:
    """(B,) bool: which samples to mirror; none (and no draw) without a left/right permutation."""
    if not flip_permutation:
        return torch.zeros(b, dtype=torch.bool)
    return torch.rand(b, generator=generator) < flip_prob


def crop_flip(
    x: torch.Tensor,
    box: tuple[torch.Tensor, ...],
    flip: torch.Tensor,
    *,
    size: int,
    flip_permutation: list[int] | None,
) -> torch.Tensor:
    """(B, C, T, S, S) -> (B, C, T, size, size): crop each sample to box = (w, h, cx, cy), each (B,) (sides as
    fractions of the image, centre in [-1, 1]), resize, and mirror where `flip` with the channel swap."""
    w, h, cx, cy = box
    theta = torch.zeros(x.shape[0], 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 2] = torch.where(flip, -w, w), cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    out = _warp(x, theta.to(x.device, x.dtype), size)
    if flip.any():
        perm = torch.as_tensor(flip_permutation, device=x.device)
        idx = flip.nonzero().squeeze(1).to(x.device)
        out[idx] = out[idx][:, perm]
    return out
