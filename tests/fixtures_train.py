"""The tiny training configuration the trainer tests share (c3d tiny, 8 frames, seconds per epoch on a CPU)."""

from __future__ import annotations

from pathlib import Path

from train.fit import FitConfig


def tiny(store: Path, out: Path, **kw) -> FitConfig:
    base = {
        "store": str(store),
        "out": str(out),
        "model": "c3d",
        "preset": "tiny",
        "epochs": 2,
        "clip_len": 8,
        "batch_size": 4,
        "lr": 1e-3,
        "workers": 0,
        "seed": 1,
    }
    return FitConfig(**{**base, **kw})
