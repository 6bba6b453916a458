#!/usr/bin/env python
"""`actrec-train fit --source heatmaps` with the crop rule used before crops were redrawn: a diagnostic.

    .venv/bin/python bench/fit_clamped_crops.py STORE --model c3d ...

Until commit d783f99 the cached-heatmap augmentation drew one (area, ratio) per sample and clamped the crop's
sides to the image (30% of draws; mean area 0.767, 30% of crops span the full width or height) where MMAction2's
RandomResizedCrop redraws (mean area 0.729, 8%). This script trains with that old rule, all else the current
code, so that docs/results.md can say how much of a Penn Action difference the crop rule accounts for. Not a
training option: the redrawn rule is PoseC3D's.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import train.sources  # noqa: E402
from train.augment import crop_flip, draw_flips  # noqa: E402
from train.cli import app  # noqa: E402


def clamped_boxes(
    b: int, *, generator: torch.Generator, area: tuple[float, float], ratio: tuple[float, float]
) -> tuple[torch.Tensor, ...]:
    """(w, h, cx, cy), each (B,): crop sides as fractions of the image, sides clamped to 1; centres in [-1, 1]."""
    a = torch.empty(b).uniform_(*area, generator=generator)
    r = torch.exp(torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator))
    w = torch.sqrt(a * r).clamp(max=1.0)
    h = torch.sqrt(a / r).clamp(max=1.0)
    cx = (torch.rand(b, generator=generator) * (1 - w) + w / 2) * 2 - 1
    cy = (torch.rand(b, generator=generator) * (1 - h) + h / 2) * 2 - 1
    return w, h, cx, cy


def clamped_crop_flip(
    x: torch.Tensor,
    *,
    size: int,
    flip_permutation: list[int] | None,
    generator: torch.Generator,
    area: tuple[float, float] = (0.56, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_prob: float = 0.5,
) -> torch.Tensor:
    """(B, C, T, S, S) -> (B, C, T, size, size): train.augment.random_resized_crop_flip with the old crop rule."""
    box = clamped_boxes(x.shape[0], generator=generator, area=area, ratio=ratio)
    flip = draw_flips(x.shape[0], generator=generator, flip_prob=flip_prob, flip_permutation=flip_permutation)
    return crop_flip(x, box, flip, size=size, flip_permutation=flip_permutation)


def main(argv: list[str]) -> None:
    # the name the heatmap source's batch transform calls
    train.sources.random_resized_crop_flip = clamped_crop_flip
    app(["fit", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
