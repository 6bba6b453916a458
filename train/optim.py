"""Optimizer and learning-rate schedule from resolved recipe values (train/recipes.py).

The schedule is a function of the global iteration (as PoseC3D's `by_epoch=False` cosine and the anchors'):
linear warm-up over `warmup_epochs` epochs of iterations, then cosine to 0 / steps of x0.1 / constant. fit
steps it after every optimizer step; a resumed run sets the iteration from the epochs already trained, so it
continues exactly where an uninterrupted run would be.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from train.config import FitConfig
from train.deploy.pretrained import optimizer_groups


def lr_factor(
    values: dict, steps_per_epoch: int, step_size: int = FitConfig.step_size
) -> Callable[[int], float]:
    """factor(iteration) for LambdaLR; `step_size` is in epochs (schedule "step": x0.1 every step_size)."""
    warm = values["warmup_epochs"] * steps_per_epoch
    total = values["epochs"] * steps_per_epoch
    schedule = values["schedule"]

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(step - warm, total - warm) / max(total - warm, 1)))
        if schedule == "step":
            return 0.1 ** (step // max(step_size * steps_per_epoch, 1))
        return 1.0

    return factor


def build_optimizer(
    model: nn.Module,
    values: dict,
    steps_per_epoch: int,
    *,
    backbone_lr_scale: float = 1.0,
    freeze_backbone_epochs: int = 0,
    step_size: int = FitConfig.step_size,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR, list[Callable[[int], float]]]:
    """(optimizer, per-iteration scheduler, the factor of each parameter group) for `values` (resolved recipe).

    Fine-tuning groups (backbone lr scale, frozen backbone) come from train/deploy/pretrained.py; its freeze counts in
    scheduler steps, so the frozen epochs are given as iterations."""
    lr = values["lr"]
    groups, factors = optimizer_groups(
        model,
        lr,
        backbone_lr_scale,
        freeze_backbone_epochs * steps_per_epoch,
        lr_factor(values, steps_per_epoch, step_size),
    )
    if values["optimizer"] == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            groups,
            lr=lr,
            momentum=values["momentum"],
            nesterov=bool(values["nesterov"]) and values["momentum"] > 0,
            weight_decay=values["weight_decay"],
        )
    else:
        optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=values["weight_decay"])
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factors), factors
