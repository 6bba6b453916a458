"""Train and inference clips/s of every model at its `small` defaults, in one run: the graph networks (stgcnpp,
ctrgcn) against the heatmap models (c3d, cnn_lstm, cnn_lstm_attn), as ratios to c3d; and each model's training
FLOPs per clip, and what its step reaches in GFLOP/s (how well the CPU runs its ops, not only how many).

Each model gets the batch its `small` defaults train with, in the memory layout fit uses: heatmap models a
(16, 27, 24, 48, 48) joints+limbs clip batch (c3d trains on its 42 px crops, PoseC3D's 0.875 x the test size),
graph models a (16, 2, 24, 13, 3) Penn Action coordinate batch (2 persons, penn13). Train = forward,
cross-entropy, backward, AdamW step; inference = forward under no_grad in eval mode. Model compute only: the
loaders are measured in bench_loader.py and bench_gcn_pipeline.py. The models take turns round by round so that a
busy host slows all alike; each cell is the best round.

    .venv/bin/python bench/bench_models.py [--batch 16 --frames 24 --threads 2 --steps 3 --rounds 3] [--write-doc F]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_kernels import cpu_name  # noqa: E402
from common import command_line, emit, ratio  # noqa: E402

from train.models import build_model  # noqa: E402

MODELS = ("c3d", "cnn_lstm", "cnn_lstm_attn", "stgcnpp", "ctrgcn")
GRAPH = ("stgcnpp", "ctrgcn")
CHANNELS, SIZE, C3D_TRAIN_SIZE, PERSONS, JOINTS, CLASSES = 27, 48, 42, 2, 13, 15


def model_and_batch(name: str, batch: int, frames: int, train: bool):
    """The model at `small` and one batch of its input, as fit hands it over on a CPU."""
    torch.manual_seed(0)
    if name in GRAPH:
        model, _ = build_model(name, "small", in_channels=3, num_classes=CLASSES, layout="penn13")
        x = torch.randn(batch, PERSONS, frames, JOINTS, 3)
    else:
        model, _ = build_model(name, "small", in_channels=CHANNELS, num_classes=CLASSES)
        size = C3D_TRAIN_SIZE if train and name == "c3d" else SIZE
        x = torch.rand(batch, CHANNELS, frames, size, size).to(memory_format=model.input_memory_format)
    model = model.to(memory_format=model.memory_format).train(train)
    return model, x, torch.randint(0, CLASSES, (batch,))


def median(times: list[float]) -> float:
    return sorted(times)[len(times) // 2]


def time_train(name: str, batch: int, frames: int, steps: int) -> float:
    model, x, y = model_and_batch(name, batch, frames, train=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    times = []
    for _ in range(steps + 1):  # the first is warm-up
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return median(times[1:])


def train_flops_per_clip(name: str, frames: int) -> float:
    """FLOPs of one training clip's forward + backward (torch.utils.flop_counter: a multiply-add = 2)."""
    model, x, y = model_and_batch(name, 1, frames, train=True)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return float(counter.get_total_flops())


@torch.no_grad()
def time_infer(name: str, batch: int, frames: int, steps: int) -> float:
    model, x, _ = model_and_batch(name, batch, frames, train=False)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return median(times[1:])


def markdown(r: dict, cmd: str) -> str:
    base_train, base_infer = r["train"]["c3d"], r["infer"]["c3d"]
    rows = []
    for name in r["train"]:  # the models measured, in the order given
        tr, inf, flops = r["train"][name], r["infer"][name], r["flops"][name]
        rows.append(
            f"| {name} | {r['params'][name] / 1e6:.2f}M | {r['batch'] / tr:.1f} | {ratio(base_train / tr)} | "
            f"{r['batch'] / inf:.1f} | {ratio(base_infer / inf)} | {flops / 1e9:.2f} | "
            f"{flops * r['batch'] / tr / 1e9:.0f} |"
        )
    return "\n".join([
        "## Models at `small`: train and inference clips/s, graph networks vs heatmap models (`bench/bench_models.py`)",
        "",
        f"`{cmd}`, {r['date']}, {r['cpu']}, {r['threads']} threads, torch {r['torch']}, load {r['load'][0]:.1f} -> "
        f"{r['load'][1]:.1f}. Batch {r['batch']}, {r['frames']} frames, 15 classes (Penn Action): heatmap models "
        f"on 27 x 48 x 48 joints+limbs heatmaps (c3d trains on 42 px crops), graph models on 2 persons x 13 joints x "
        f"(x, y, score). Train: forward, cross-entropy, backward, AdamW step; inference: forward, eval mode, no grad. "
        f"Model compute only (no loader); the best of {r['rounds']} rounds in which the models take turns, each the "
        f"median of {r['steps']} steps after a warm-up. Train GFLOPs: one clip's forward + backward "
        f"(torch.utils.flop_counter, a multiply-add = 2); GFLOP/s: that times the train clips/s.",
        "",
        "| model | params | train clips/s | train vs c3d | inference clips/s | inference vs c3d | train GFLOPs/clip "
        "| train GFLOP/s |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per round (after one warm-up step)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds in which every model takes a turn")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated; c3d is the baseline")
    ap.add_argument("--write-doc", default="", help="also write the markdown table to this file")
    a = ap.parse_args(argv)
    names = [m for m in a.models.split(",") if m]
    if "c3d" not in names:
        ap.error("--models must include c3d (the baseline of the ratios)")

    torch.set_num_threads(a.threads)
    load_before = os.getloadavg()[0]
    train: dict[str, list[float]] = {m: [] for m in names}
    infer: dict[str, list[float]] = {m: [] for m in names}
    for _ in range(a.rounds):
        for name in names:
            train[name].append(time_train(name, a.batch, a.frames, a.steps))
            infer[name].append(time_infer(name, a.batch, a.frames, a.steps))
    params = {
        m: sum(p.numel() for p in model_and_batch(m, 1, a.frames, False)[0].parameters()) for m in names
    }
    r = {
        "flops": {m: train_flops_per_clip(m, a.frames) for m in names},
        "train": {m: min(t) for m, t in train.items()},
        "infer": {m: min(t) for m, t in infer.items()},
        "params": params,
        "batch": a.batch,
        "frames": a.frames,
        "threads": a.threads,
        "steps": a.steps,
        "rounds": a.rounds,
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "load": (load_before, os.getloadavg()[0]),
    }
    emit(markdown(r, command_line("bench_models.py", argv)), a.write_doc or None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
