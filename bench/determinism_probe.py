"""One 1-epoch tiny fit on a small synthetic store; prints the exact float bits of its loss and weights.

Run it under different settings and compare the lines (docs/pipeline.md, determinism):
    python bench/determinism_probe.py c3d --threads 1
    python bench/determinism_probe.py c3d --threads 2
    ATEN_CPU_CAPABILITY=avx2 python bench/determinism_probe.py c3d
    taskset -c 0 python bench/determinism_probe.py c3d --threads 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import torch

from etl.commands.demo_data import generate_demo_data
from etl.commands.ingest import ingest
from etl.commands.render import render
from etl.heatmaps.spec import RenderSpec
from etl.pose.skeleton import get_layout
from etl.readers import ReadOptions
from train.checkpoint import load_checkpoint
from train.fit import FitConfig, fit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="c3d")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_demo_data(root / "demo", n_subjects=2, reps=2, seed=3)
        opts = ReadOptions(layout=get_layout("coco17"), labels_csv=root / "demo/clips.csv")
        ingest([root / "demo/clips"], out=root / "kp.zarr", fmt="coco-json", options=opts)
        render(root / "kp.zarr", root / "hm.zarr", RenderSpec(size=32, frames_per_chunk=8), threads=2)
        cfg = FitConfig(
            store=str(root / "hm.zarr"), out=str(root / "run"), model=args.model, preset="tiny", epochs=1,
            clip_len=8, batch_size=4, lr=1e-3, workers=0, seed=1, threads=args.threads,
        )  # fmt: skip
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit(cfg, log=lambda message: None)
        loss = float(pd.read_csv(root / "run/metrics.csv").train_loss[0])
        weights = load_checkpoint(root / "run/last.pt")["model"]
        total = sum(float(v.double().abs().sum()) for v in weights.values() if v.is_floating_point())
    determinism = sorted({str(w.message)[:100] for w in caught if "determinis" in str(w.message).lower()})
    print(json.dumps({"model": args.model, "threads": torch.get_num_threads(), "train_loss": loss.hex(),
                      "sum_abs_weights": total.hex(), "determinism_warnings": determinism}))  # fmt: skip


if __name__ == "__main__":
    main()
