"""Levers on a graph network's CPU training step, measured in one run as ratios to the eager step fit runs today.

bench_models.py shows ST-GCN++ `small` reaching about a third of c3d's GFLOP/s on the same core (many small ops on
(32, 32-128, 24, 13) tensors). This measures what PyTorch itself offers against that, on the same
(16, 2, 24, 13, 3) Penn Action coordinate batch fit trains with (AdamW step included):

- eager: what fit runs (oneDNN convolutions);
- eager, oneDNN off: `torch.backends.mkldnn.flags(enabled=False)` (PyTorch's own im2col + GEMM convolutions);
- torch.compile: inductor's fused C++ kernels (needs a C++ compiler); its one-off compile time is reported too,
  because fit would pay it once per run (and again at the last, smaller batch of an epoch); measured cold, with
  an empty inductor cache (a warm cache on the same machine cuts it to seconds).

The variants take turns round by round so that a busy host slows all alike; each cell is the best round.

    .venv/bin/python bench/bench_gcn_step.py [--model stgcnpp --threads 1 --steps 10 --rounds 3] [--no-compile]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_kernels import cpu_name  # noqa: E402
from bench_models import JOINTS, PERSONS, model_and_batch  # noqa: E402
from common import command_line, emit, ratio  # noqa: E402

BATCH, FRAMES = 16, 24  # bench_models.py's defaults: what `small` trains with


def make_step(name: str, compile_model: bool = False):
    """One training step (forward, cross-entropy, backward, AdamW) of model `name` at `small`, on its batch."""
    model, x, y = model_and_batch(name, BATCH, FRAMES, train=True)
    forward = torch.compile(model) if compile_model else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(forward(x), y).backward()
        opt.step()

    return step


def seconds_per_step(step, steps: int, onednn: bool = True) -> float:
    with torch.backends.mkldnn.flags(enabled=onednn):
        step()  # warm: allocator, oneDNN primitives
        start = time.perf_counter()
        for _ in range(steps):
            step()
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="stgcnpp", choices=("stgcnpp", "ctrgcn"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--no-compile", action="store_true", help="skip torch.compile (no C++ compiler, or no time)"
    )
    ap.add_argument("--write-doc", help="also write the markdown table to this file")
    args = ap.parse_args(argv)
    # the oneDNN flag's setter warns about Intel-GPU TF32 on every call
    warnings.filterwarnings("ignore", message=".*TF32 acceleration on top of oneDNN")
    torch.set_num_threads(args.threads)

    variants = {
        "eager (fit today)": (make_step(args.model), True),
        "eager, oneDNN off": (make_step(args.model), False),
    }
    compile_s, cache_dir = None, None
    if not args.no_compile:
        # a cold compile, as a fresh machine's first fit pays it (inductor caches kernels on disk otherwise)
        cache_dir = tempfile.mkdtemp(prefix="bench_gcn_step_inductor_")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir
        step = make_step(args.model, compile_model=True)
        start = time.perf_counter()
        step()  # compiles forward and backward
        compile_s = time.perf_counter() - start
        variants["torch.compile"] = (step, True)

    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, (step, onednn) in variants.items():
            best[name] = min(best[name], seconds_per_step(step, args.steps, onednn))

    if cache_dir:
        shutil.rmtree(cache_dir, ignore_errors=True)
    base = best["eager (fit today)"]
    rows = [
        f"| {name} | {1000 * s:.0f} | {BATCH / s:.1f} | {ratio(base / s)} |"
        + (f" {compile_s:.0f} s |" if name == "torch.compile" else " - |")
        for name, s in best.items()
    ]
    md = "\n".join(
        [
            f"`{command_line('bench_gcn_step.py', argv)}` ({datetime.date.today()}, {cpu_name()}, "
            f"{args.threads} thread(s); {args.model} `small`, batch ({BATCH}, {PERSONS}, {FRAMES}, {JOINTS}, 3), "
            f"best of {args.rounds} rounds of {args.steps} steps):",
            "",
            "| step | ms per step | train clips/s | vs eager | one-off compile |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    emit(md, args.write_doc)


if __name__ == "__main__":
    main()
