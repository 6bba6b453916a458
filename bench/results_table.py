#!/usr/bin/env python
"""Markdown table of trained runs: test metrics (eval.json), training facts (metrics.json, checkpoint config).

    .venv/bin/python bench/results_table.py runs/penn      # after bench/train_penn.sh runs/penn

Also copies each run's curves and confusion matrix to docs/img/<prefix>_<model>_*.png for docs/results.md.
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path)
    ap.add_argument("--img-prefix", default="penn")
    a = ap.parse_args(argv)
    lines = [
        "| model | params | test top-1 | test top-5 | test mean class acc | epochs | train clips/s | fit wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in MODELS:
        run = a.runs / model
        if not (run / "eval.json").exists():
            lines.append(f"| {model} | - | not run | | | | | |")
            continue
        ev = json.loads((run / "eval.json").read_text())
        fit = json.loads((run / "metrics.json").read_text())
        timing = run / "timing.json"  # older runs kept clips/s in metrics.json
        fit |= json.loads(timing.read_text()) if timing.exists() else {}
        ckpt = load_checkpoint(run / "last.pt")
        params = count_parameters(model_from_config(model, ckpt["model_config"]))
        wall = run / "fit_wall_s.txt"
        wall_s = f"{int(wall.read_text()) / 60:.0f} min" if wall.exists() else "-"
        lines.append(
            f"| {model} | {params / 1e6:.2f}M | **{ev['top1']:.1%}** | {ev['top5']:.1%} | {ev['mean_class_acc']:.1%} "
            f"| {fit['epochs']} | {fit['train_clips_per_s']:.1f} | {wall_s} |"
        )
        for name in ("curves", "confusion", "attention"):
            src = run / "plots" / f"{name}.png"
            src = src if src.exists() else run / f"{name}.png"  # runs made before plots/ existed
            if src.exists():
                shutil.copy(src, ROOT / "docs" / "img" / f"{a.img_prefix}_{model}_{name}.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
