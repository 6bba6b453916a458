"""Heatmap views -> model input: the layout change, the resize and the test-time flip that validation, evaluate,
predict and the attention plot apply to the fixed views both training sources give."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_model_input(views: torch.Tensor, scale: float) -> torch.Tensor:
    """(B, T, C, S, S) uint8/float16 -> (B, C, T, S, S) float32 in [0, 1], the layout every model takes."""
    # Permute while still 1-2 bytes per value, then convert once and scale in place: one float buffer instead
    # of three (on a CPU the fresh float buffers' page faults cost more than the arithmetic: 16 -> 6 ms for a
    # 48 x 17 x 64 x 64 sample). Values are bitwise those of (views.float() / scale).permute(...).
    x = views.permute(0, 2, 1, 3, 4).contiguous().float()
    return x.div_(scale) if scale != 1 else x


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
