"""Spatial augmentation on the device, batched: uint8 views -> float model input.

PoseC3D's train geometry (RandomResizedCrop area 0.56-1, ratio 3/4-4/3, resize, horizontal flip with the
left/right channel swap) is applied to the cached heatmaps with one affine grid_sample per batch, instead of to
keypoints before rendering. A flip mirrors pixel x to S-1-x and swaps channels with the store's permutation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_model_input(views: torch.Tensor, scale: float) -> torch.Tensor:
    """(B, T, C, S, S) uint8/float16 -> (B, C, T, S, S) float32 in [0, 1], the layout every model takes."""
    # Permute while still 1-2 bytes per value, then convert once and scale in place: one float buffer instead
    # of three (on a CPU the fresh float buffers' page faults cost more than the arithmetic: 16 -> 6 ms for a
    # 48 x 17 x 64 x 64 sample). Values are bitwise those of (views.float() / scale).permute(...).
    x = views.permute(0, 2, 1, 3, 4).contiguous().float()
    return x.div_(scale) if scale != 1 else x


def _warp(x: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Resample (B, C, T, H, W) with per-sample affine maps theta (B, 2, 3) to (B, C, T, size, size)."""
    b, c, t, h, w = x.shape
    flat = x.reshape(b, c * t, h, w)
    grid = F.affine_grid(theta, [b, c * t, size, size], align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(b, c, t, size, size)


def random_resized_crop_flip(
    x: torch.Tensor,
    *,
    size: int,
    flip_permutation: list[int] | None,
    generator: torch.Generator,
    area: tuple[float, float] = (0.56, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_prob: float = 0.5,
) -> torch.Tensor:
    """(B, C, T, S, S) -> (B, C, T, size, size). Random numbers come from `generator` (CPU) so a seeded run
    draws the same crops on any device."""
    b = x.shape[0]
    a = torch.empty(b).uniform_(*area, generator=generator)
    log_r = torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    r = torch.exp(log_r)
    w = torch.sqrt(a * r).clamp(max=1.0)  # crop width / image width
    h = torch.sqrt(a / r).clamp(max=1.0)
    cx = (torch.rand(b, generator=generator) * (1 - w) + w / 2) * 2 - 1  # crop centre in [-1, 1]
    cy = (torch.rand(b, generator=generator) * (1 - h) + h / 2) * 2 - 1
    flip = (
        torch.rand(b, generator=generator) < flip_prob
        if flip_permutation
        else torch.zeros(b, dtype=torch.bool)
    )
    sx = torch.where(flip, -w, w)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    out = _warp(x, theta.to(x.device, x.dtype), size)
    if flip.any():
        perm = torch.as_tensor(flip_permutation, device=x.device)
        idx = flip.nonzero().squeeze(1).to(x.device)
        out[idx] = out[idx][:, perm]
    return out


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, T, S, S) -> (B, C, T, size, size); the identity when the sizes agree (evaluation)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    b, c, t, h, w = x.shape
    out = F.interpolate(x.reshape(b, c * t, h, w), size=(size, size), mode="bilinear", align_corners=False)
    return out.reshape(b, c, t, size, size)


def hflip(x: torch.Tensor, flip_permutation: list[int]) -> torch.Tensor:
    """Mirror (B, C, T, H, W) horizontally and swap left/right channels (test-time flip)."""
    perm = torch.as_tensor(flip_permutation, device=x.device)
    return x.flip(-1)[:, perm]
