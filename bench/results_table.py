#!/usr/bin/env python
"""Markdown table of trained runs: test metrics (eval.json), training facts (metrics.json, checkpoint config).

    .venv/bin/python bench/results_table.py runs/penn/heatmaps      # after bench/train_penn.sh runs/penn
    .venv/bin/python bench/results_table.py runs/penn/coordinates   # the graph networks' streams and fusions

Every sub-folder holding an eval.json is a row: the heatmap models first, then by name. A fusion's row (an
eval.json of `actrec-train fuse`) names its inputs and weights; its wall time is the sum of its inputs' fits.
Also copies each run's curves and confusion matrix to docs/img/<prefix>_<run>_*.png for docs/results.md
(<prefix>: the dataset folder above RUNS, e.g. penn for runs/penn/heatmaps, or --img-prefix).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train.checkpoint import load_checkpoint  # noqa: E402
from train.models import count_parameters, model_from_config  # noqa: E402

MODELS = ("c3d", "cnn_lstm", "cnn_lstm_attn")


STREAMS = ("j", "b", "jm", "bm")


def _stream_order(name: str) -> tuple:
    """stgcnpp_j, stgcnpp_b, stgcnpp_jm, stgcnpp_bm, then the model's fusions; model by model."""
    model, _, suffix = name.rpartition("_")
    return (model, STREAMS.index(suffix) if suffix in STREAMS else len(STREAMS), name)


def wall_s(run: Path) -> int | None:
    """The fit's wall time, or a fusion's: the sum over its inputs (fusions of fusions included); None if unknown.
    A fusion names its inputs as `fuse` was given them: relative paths are from where it ran (the repository)."""
    wall = run / "fit_wall_s.txt"  # written by bench/train_penn.sh around fit
    if wall.exists():
        return int(wall.read_text())
    ev = run / "eval.json"
    inputs = json.loads(ev.read_text()).get("inputs") if ev.exists() else None
    if not inputs:
        return None
    walls = [wall_s(Path(i["eval"]).parent) for i in inputs]
    return None if None in walls else sum(walls)


def _minutes(seconds: int | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.0f} min"


def fused_row(runs: Path, name: str, ev: dict) -> str:
    """A fusion: its inputs (the folders of their eval.json) with weights; wall time summed over their fits."""
    inputs = [(Path(i["eval"]).parent, i["weight"]) for i in ev["inputs"]]
    what = " + ".join(f"{w:g} x {run.name}" for run, w in inputs)
    total = wall_s(runs / name)  # the sum over the inputs' fits
    return (
        f"| {name} ({what}) | - | **{ev['top1']:.1%}** | {ev['top5']:.1%} | {ev['mean_class_acc']:.1%} | - | - | "
        f"{_minutes(total)} |"
    )


def img_prefix(runs: Path) -> str:
    """runs/utd/coordinates -> 'utd': plots of different datasets never overwrite each other in docs/img."""
    return runs.resolve().parent.name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path)
    ap.add_argument(
        "--img-prefix",
        help="plot names' prefix in docs/img (default: the dataset folder, runs/<dataset>/...)",
    )
    a = ap.parse_args(argv)
    prefix = a.img_prefix or img_prefix(a.runs)
    lines = [
        "| model | params | test top-1 | test top-5 | test mean class acc | epochs | train clips/s | fit wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    found = {p.parent.name for p in a.runs.glob("*/eval.json")}
    names = [m for m in MODELS if m in found] + sorted(found - set(MODELS), key=_stream_order)
    if not names:
        print(f"no run with an eval.json under {a.runs}", file=sys.stderr)
        return 1
    for name in names:
        run = a.runs / name
        ev = json.loads((run / "eval.json").read_text())
        if ev.get("model") == "fused":
            lines.append(fused_row(a.runs, name, ev))
            continue
        fit = json.loads((run / "metrics.json").read_text())
        timing = run / "timing.json"  # older runs kept clips/s in metrics.json
        fit |= json.loads(timing.read_text()) if timing.exists() else {}
        ckpt = load_checkpoint(run / "last.pt")
        params = count_parameters(model_from_config(ev["model"], ckpt["model_config"]))
        lines.append(
            f"| {name} | {params / 1e6:.2f}M | **{ev['top1']:.1%}** | {ev['top5']:.1%} | {ev['mean_class_acc']:.1%} "
            f"| {fit['epochs']} | {fit['train_clips_per_s']:.1f} | {_minutes(wall_s(run))} |"
        )
        for plot in ("curves", "confusion", "attention"):
            src = run / "plots" / f"{plot}.png"
            src = src if src.exists() else run / f"{plot}.png"  # runs made before plots/ existed
            if src.exists():
                shutil.copy(src, ROOT / "docs" / "img" / f"{prefix}_{name}_{plot}.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
