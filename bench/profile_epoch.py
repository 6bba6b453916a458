#!/usr/bin/env python
"""Where a CPU training step's time goes: data wait, augmentation, forward, backward, optimizer step.

    .venv/bin/python bench/profile_epoch.py STORE [--model c3d --preset small --batches 24 --repeats 3]

Builds the trainer's own pieces (train/fit.py: the recipe, datasets, loader, model, optimizer) and times each
phase of a training step with perf_counter (CPU ops are synchronous, so the times are the phases'). Every
variant in VARIANTS runs the same batches (same seed) in the same process; variants are interleaved and repeated
(the host is shared: medians over repeats, and ratios against "before" measured in the same run).

Variants: "before" = the trainer before the CPU tuning (fit's thread count and loader workers, contiguous fp32);
"after" = fit's CPU default now (channels-last weights and inputs, fp32); the others change one of: loader
workers, bf16 autocast (`fit --precision bf16`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import command_line, emit  # noqa: E402

from etl.stores.heatmap_store import value_scale  # noqa: E402
from train.config import FitConfig  # noqa: E402
from train.device import pick_device  # noqa: E402
from train.models import build_model  # noqa: E402
from train.optim import build_optimizer  # noqa: E402
from train.recipes import FIELDS, resolve  # noqa: E402
from train.sources import open_source  # noqa: E402
from train.sources.loading import EpochSampler, make_loader, select_clips  # noqa: E402

PHASES = ("data wait", "augmentation", "forward", "backward", "optimizer")


@dataclass(frozen=True)
class Variant:
    name: str
    threads: int  # torch intra-op threads in the training process
    workers: int  # DataLoader worker processes
    channels_last: bool
    bf16: bool


def variants() -> list[Variant]:
    threads, workers = FitConfig.threads, FitConfig.workers  # fit's defaults
    return [
        Variant("before", threads, workers, False, False),
        Variant("workers 1", threads, 1, False, False),
        Variant("after: channels-last (fit's default)", threads, workers, True, False),
        Variant("channels-last + bf16 (--precision bf16)", threads, workers, True, True),
    ]


def profile(args, variant: Variant, pieces) -> dict[str, float]:
    """Seconds per phase over `args.batches` batches (after one warm-up batch)."""
    _store, train_set, to_input, model_fn, values = pieces
    torch.set_num_threads(variant.threads)
    torch.manual_seed(0)
    model = model_fn()
    if variant.channels_last:
        model = model.to(memory_format=model.memory_format)
    model.train()
    sampler = EpochSampler(len(train_set), shuffle=True, seed=0)
    loader = make_loader(
        train_set,
        sampler,
        batch_size=args.batch_size,
        workers=variant.workers,
        device=torch.device("cpu"),
        collate_fn=getattr(train_set, "collate", None),
    )
    optimizer, scheduler, _ = build_optimizer(model, values, len(loader))
    gen = torch.Generator().manual_seed(0)
    totals = dict.fromkeys(PHASES, 0.0)
    it = iter(loader)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if variant.bf16 else nullcontext()
    for i in range(args.batches + 1):
        t0 = time.perf_counter()
        views, labels = next(it)
        t1 = time.perf_counter()
        x = to_input(views, gen)
        if variant.channels_last and x.ndim == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        t2 = time.perf_counter()
        with autocast:
            logits = model(x)
        loss = F.cross_entropy(logits.float(), labels)
        t3 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        if values["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), values["grad_clip"])
        optimizer.step()
        scheduler.step()
        t5 = time.perf_counter()
        if i == 0:
            continue  # warm-up: worker start, first-touch allocations, oneDNN kernel selection
        for phase, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            totals[phase] += dt
    del it, loader
    return totals


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store")
    p.add_argument("--model", default="c3d")
    p.add_argument("--preset", default="small")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--clip-len", type=int, default=None)
    p.add_argument("--batches", type=int, default=24)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default=None, help="semicolon-separated variant names (default: all)")
    p.add_argument("--write-doc", default=None)
    args = p.parse_args(argv)

    device = pick_device("cpu")
    store = open_source("heatmaps", args.store, None)
    options = dict.fromkeys(FIELDS)
    options["clip_len"] = args.clip_len
    recipe = resolve(
        args.model,
        args.preset,
        options,
        batch_size=args.batch_size,
        store_size=store.spec.size,
        pretrained=False,
    )
    v = recipe.values
    rows = select_clips(store, "split == 'train'")
    train_set = store.dataset(
        rows, clip_len=v["clip_len"], train=True, seed=0, input_size=v["train_size"], augment=True
    )
    to_input = store.train_input(
        device=device,
        scale=value_scale(store.spec.dtype),
        input_size=v["train_size"],
        augment=True,
        renderer="numba",
    )

    def model_fn():
        model, _ = build_model(
            args.model, args.preset, len(store.channels), len(store.classes), dropout=v["dropout"]
        )
        return model

    pieces = (store, train_set, to_input, model_fn, v)
    cores = os.cpu_count() or 1
    chosen = variants()
    if args.only:
        keep = {name.strip() for name in args.only.split(";")}
        chosen = [c for c in chosen if c.name in keep]
    results: dict[str, list[dict[str, float]]] = {c.name: [] for c in chosen}
    for r in range(args.repeats):
        for variant in chosen:  # interleaved: a slow moment of the host hits every variant alike
            t = profile(args, variant, pieces)
            results[variant.name].append(t)
            total = sum(t.values())
            print(
                f"repeat {r + 1} {variant.name}: {args.batches * args.batch_size / total:.1f} clips/s "
                + ", ".join(f"{k} {t[k]:.2f}s" for k in PHASES),
                file=sys.stderr,
            )

    clips = args.batches * args.batch_size
    lscpu_bf16 = "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    lines = [
        "## CPU training step: where the time goes (`bench/profile_epoch.py`)",
        "",
        f"`{command_line('profile_epoch.py', argv)}`: {args.model} {args.preset}, {v['clip_len']} frames, "
        f"{v['train_size']} px train crops, batch {args.batch_size}, {args.batches} batches per run, "
        f"{args.repeats} interleaved repeats, {cores} cores (avx512_bf16: {'yes' if lscpu_bf16 else 'no'}), "
        f"torch {torch.__version__}. Milliseconds per batch (median over repeats; spread = min-max of clips/s).",
        "",
        "| variant | " + " | ".join(PHASES) + " | clips/s (spread) | vs before |",
        "|---|" + "---|" * (len(PHASES) + 2),
    ]
    base = None
    for variant in chosen:
        runs = results[variant.name]
        speeds = [clips / sum(t.values()) for t in runs]
        speed = statistics.median(speeds)
        base = base or speed
        ms = [statistics.median(t[k] for t in runs) / args.batches * 1000 for k in PHASES]
        lines.append(
            f"| {variant.name} (threads {variant.threads}, workers {variant.workers}) | "
            + " | ".join(f"{x:.0f}" for x in ms)
            + f" | {speed:.1f} ({min(speeds):.1f}-{max(speeds):.1f}) | {speed / base:.2f}x |"
        )
    emit("\n".join(lines) + "\n", args.write_doc)


if __name__ == "__main__":
    main()
