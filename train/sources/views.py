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


class HeatmapViews:
    """Eval loader batch (B, V, T, C, S, S) -> (B*V, C, T, input_size, input_size) float32 on `device`."""

    def __init__(self, device: torch.device, scale: float, input_size: int):
        self.device, self.scale, self.input_size = device, scale, input_size

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        x = to_model_input(views.to(self.device, non_blocking=True).flatten(0, 1), self.scale)
        return resize(x, self.input_size)


class GivesHeatmaps:
    """What the two heatmap sources (heatmaps, keypoints) add to the TrainingSource protocol alike: views of
    `spec` (their render settings), recorded in checkpoints as "render"."""

    gives = "heatmaps"  # what a model must consume (train/models: `consumes`)
    fit_fields: tuple[str, ...] = ()  # train/config.py COORDINATE_FIELDS this source reads (none)

    @property
    def value_scale(self) -> float:
        """What the stored values are divided by to give [0, 1] floats."""
        from etl.stores.heatmap_store import value_scale

        return value_scale(self.spec.dtype)

    @property
    def view_size(self) -> int:
        return self.spec.size

    def model_options(self) -> dict:
        return {}

    def checkpoint_record(self, input_size: int, clip_len: int) -> dict:
        return {"render": self.spec.to_checkpoint(self.layout, input_size)}

    def check_record(self, record: dict, checkpoint: str) -> None:
        """Refuse a store whose views differ from what the checkpoint was trained on (channels, size, sigma)."""
        from etl.common.errors import ActrecError

        render = record.get("render")
        if render is None:
            raise ActrecError(f"{checkpoint} has no render settings: it was not trained on heatmaps")
        got = (list(self.channels), self.spec.size, float(self.spec.sigma))
        want = (list(render["channels"]), int(render["size"]), float(render["sigma"]))
        if got != want:
            raise ActrecError(
                f"{self.path} ({len(got[0])} channels, {got[1]} px, sigma {got[2]}) does not match "
                f"what {checkpoint} was trained on ({len(want[0])} channels, {want[1]} px, sigma {want[2]}): "
                "render the store with the checkpoint's settings"
            )

    def eval_input(self, device: torch.device, scale: float, input_size: int) -> HeatmapViews:
        return HeatmapViews(device, scale, input_size)
