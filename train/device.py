"""Device and distributed set-up, shared by fit, evaluate, predict and export (torchvision keeps these in
utils): a checked device name, and torchrun's process group."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from etl.common.errors import ActrecError


def init_distributed() -> tuple[int, int]:
    """torchrun sets WORLD_SIZE/RANK; NCCL on GPUs, gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def pick_device(name: str, rank: int = 0) -> torch.device:
    """auto | cpu | cuda | cuda:N, checked: a clear error instead of a torch traceback."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ActrecError(f"--device {name!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ActrecError(f"--device {name}, but this torch has no CUDA device (see README, 'GPU')")
        index = device.index if device.index is not None else int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    if device.type != "cpu":
        raise ActrecError(f"--device {name!r} is not supported: use auto, cpu, cuda or cuda:N")
    return device


def mean_over_ranks(sums: tuple[float, int, int], device, world: int) -> tuple[float, float]:
    """(loss, top-1) means over all ranks from each rank's (loss sum, correct, seen)."""
    loss_sum, correct, seen = sums
    if world > 1:
        t = torch.tensor(sums, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        loss_sum, correct, seen = t.tolist()
    return loss_sum / max(seen, 1), correct / max(seen, 1)
