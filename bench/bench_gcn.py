"""ST-GCN++ `full`: a CPU training step of ours (train/models/gcn.py STGCNPP) against MMAction2 1.2's STGCN + GCNHead
(built from stgcnpp_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py in the anchor venv), in one run, same batch,
frames, persons, joints, threads and optimiser (SGD 0.1, momentum 0.9, nesterov, weight decay 5e-4); plus the
model's FLOPs per clip (torch.utils.flop_counter) and the fraction of this CPU's measured float32 matmul
throughput that the step reaches.

    .venv/bin/python bench/bench_gcn.py [--batch 16 --frames 100 --threads 2 --steps 3 --rounds 2] [--write-doc F]

The two sides alternate (anchor, ours, anchor, ours, ...) so that a busy host slows both alike; the table gives
each side's best round and the ratio of the best rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_kernels import anchor_python, cpu_name  # noqa: E402
from common import command_line, emit, ratio  # noqa: E402

from train.models import build_model  # noqa: E402

PERSONS, JOINTS, CLASSES = 2, 17, 60


def model_and_batch(batch: int, frames: int):
    torch.manual_seed(0)
    model, _ = build_model("stgcnpp", "full", in_channels=3, num_classes=CLASSES, layout="coco17")
    x = torch.randn(batch, PERSONS, frames, JOINTS, 3)
    y = torch.randint(0, CLASSES, (batch,))
    return model.train(), x, y


def time_ours(batch: int, frames: int, steps: int) -> float:
    model, x, y = model_and_batch(batch, frames)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    times = []
    for _ in range(steps + 1):  # the first is warm-up
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


def time_anchor(batch: int, frames: int, threads: int, steps: int) -> float:
    cmd = [str(anchor_python()), str(ROOT / "bench" / "anchor_stgcn.py"), "step"]
    out = subprocess.run([*cmd, str(batch), str(frames), str(threads), str(steps)], check=True,
                         capture_output=True, text=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])["s_per_step"]


def flops(batch: int, frames: int) -> tuple[float, float]:
    """(forward FLOPs per clip, forward + backward FLOPs per clip); a multiply-add counts 2."""
    from torch.utils.flop_counter import FlopCounterMode

    model, x, y = model_and_batch(batch, frames)
    with FlopCounterMode(display=False) as fwd:
        logits = model(x)
    with FlopCounterMode(display=False) as bwd:
        torch.nn.functional.cross_entropy(logits, y).backward()
    f, b = fwd.get_total_flops(), bwd.get_total_flops()
    return f / batch, (f + b) / batch


def matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / sorted(times)[len(times) // 2] / 1e9


def markdown(r: dict, cmd: str) -> str:
    fwd, train = r["flops_fwd_per_clip"], r["flops_train_per_clip"]
    achieved = train * r["batch"] / r["ours_s"] / 1e9
    return "\n".join([
        "## Graph networks: ST-GCN++ training step vs MMAction2 (`bench/bench_gcn.py`)",
        "",
        f"`{cmd}`, {r['date']}, {r['cpu']}, {r['threads']} threads, torch {r['torch']} (both sides), "
        f"load {r['load'][0]:.1f} -> {r['load'][1]:.1f}.",
        f"ST-GCN++ `full` (coco17 graph, 60 classes, {r['params'] / 1e6:.2f}M parameters), batch {r['batch']} x "
        f"{PERSONS} persons x {r['frames']} frames x {JOINTS} joints x 3; forward, cross-entropy, backward, SGD "
        f"step; the best of {len(r['ours_rounds'])} alternating rounds (each the median of {r['steps']} steps after "
        f"a warm-up; all rounds, s: MMAction2 {', '.join(f'{s:.2f}' for s in r['anchor_rounds'])}, actrec "
        f"{', '.join(f'{s:.2f}' for s in r['ours_rounds'])}).",
        "",
        "| | s per step | clips/s | vs MMAction2 |",
        "|---|---|---|---|",
        f"| MMAction2 1.2 STGCN + GCNHead | {r['anchor_s']:.3f} | {r['batch'] / r['anchor_s']:.1f} | 1x |",
        f"| actrec STGCNPP | {r['ours_s']:.3f} | {r['batch'] / r['ours_s']:.1f} | "
        f"{ratio(r['anchor_s'] / r['ours_s'])} |",
        "",
        f"FLOPs per clip (torch.utils.flop_counter, a multiply-add = 2): forward {fwd / 1e9:.2f} G "
        f"({fwd / 2e9:.2f} GMACs; MMAction2's model zoo lists 1.95 G, counted in multiply-adds), forward + backward "
        f"{train / 1e9:.2f} G. The step reaches {achieved:.1f} GFLOP/s, "
        f"{achieved / r['matmul_gflops']:.0%} of this CPU's float32 matmul throughput measured in the same run "
        f"(1024 x 1024, {r['threads']} threads: {r['matmul_gflops']:.1f} GFLOP/s).",
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per round (after one warm-up step)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of anchor and ours")
    ap.add_argument("--write-doc", default="", help="also write the markdown table to this file")
    ap.add_argument("--json-out", help="also write the raw numbers here")
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    load_before = os.getloadavg()[0]
    anchor_rounds, ours_rounds = [], []
    for _ in range(a.rounds):
        anchor_rounds.append(time_anchor(a.batch, a.frames, a.threads, a.steps))
        ours_rounds.append(time_ours(a.batch, a.frames, a.steps))
    anchor_s, ours_s = min(anchor_rounds), min(ours_rounds)
    fwd, train = flops(a.batch, a.frames)
    model, _, _ = model_and_batch(1, 1)
    r = {
        "anchor_s": anchor_s,
        "ours_s": ours_s,
        "anchor_rounds": anchor_rounds,
        "ours_rounds": ours_rounds,
        "flops_fwd_per_clip": fwd,
        "flops_train_per_clip": train,
        "matmul_gflops": matmul_gflops(),
        "params": sum(p.numel() for p in model.parameters()),
        "batch": a.batch,
        "frames": a.frames,
        "threads": a.threads,
        "steps": a.steps,
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "load": (load_before, os.getloadavg()[0]),
    }
    emit(markdown(r, command_line("bench_gcn.py", argv)), a.write_doc)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(r, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
