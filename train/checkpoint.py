"""Checkpoints: everything a run needs to resume or to predict, saved atomically, loaded with weights_only=True.

Contents: model name + its config (a plain dict) + weights, optimizer, scheduler, epoch, best metric, the fit
config, RNG states, the class names and the render settings of the store it was trained on (so `predict` can
render new poses exactly like the training data).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from etl.errors import ActrecError
from etl.storeio import disk_full_error, is_disk_full


def save_checkpoint(path: Path, state: dict) -> None:
    # Write then rename: a run killed mid-save leaves the previous checkpoint intact. Through a Python file:
    # a full disk then raises OSError(ENOSPC) (torch's own writer reports only "unexpected pos").
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, Exception) and is_disk_full(exc):
            raise disk_full_error(path, f"{path.name} was not updated (the previous one is intact)") from None
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ActrecError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ActrecError(f"cannot load checkpoint {path}: {exc}") from exc


def rng_states() -> dict:
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
