"""The summary after `dvc repro`: one row per model with its test accuracies, and where the pictures are.

    python -m etl.pipeline_report            # table of runs/<model>/eval.json (+ best validation epoch)
    python -m etl.pipeline_report --html     # also write the DVC plots page (dvc_plots/index.html)
    python -m etl.pipeline_report --json     # the rows as JSON

Reads the files the pipeline wrote (dvc.yaml decides which models); a model whose stage has not run yet is
listed as missing, never an error. `summary_rows` and `format_table` are the library part (no printing).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

DEFAULT_MODELS = ("c3d", "cnn_lstm", "cnn_lstm_attn")
PICTURES = ("plots/curves.png", "plots/confusion.png", "plots/attention.png")
HTML = Path("dvc_plots") / "index.html"


def pipeline_models(root: Path = Path(".")) -> list[str]:
    """The models of the `evaluate` (else `train`) foreach in dvc.yaml; the default three without one."""
    try:
        import yaml  # PyYAML (a dependency of dask and dvc)
    except ImportError:
        return list(DEFAULT_MODELS)
    try:
        stages = yaml.safe_load((Path(root) / "dvc.yaml").read_text())["stages"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return list(DEFAULT_MODELS)
    for name in ("evaluate", "train"):
        items = (stages.get(name) or {}).get("foreach")
        if isinstance(items, list) and all(isinstance(i, str) for i in items):
            return items
        if isinstance(items, dict):
            return list(items)
    return list(DEFAULT_MODELS)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summary_rows(root: Path = Path("."), models: list[str] | None = None) -> list[dict]:
    """One dict per model: test metrics from runs/<model>/eval.json, training facts from metrics.json, and the
    pictures that exist. Missing files give None values."""
    root = Path(root)
    rows = []
    for model in models or pipeline_models(root):
        run = root / "runs" / model
        ev = _read_json(run / "eval.json") or {}
        fit = _read_json(run / "metrics.json") or {}
        rows.append(
            {
                "model": model,
                "top1": ev.get("top1"),
                "top5": ev.get("top5"),
                "mean_class_acc": ev.get("mean_class_acc"),
                "n_clips": ev.get("n_clips"),
                "views": (f"{ev['clips']}{' + flip' if ev.get('flip') else ''}" if "clips" in ev else None),
                "checkpoint_epoch": ev.get("checkpoint_epoch"),
                "epochs": fit.get("epochs"),
                "val_mean_class_acc": fit.get("val_mean_class_acc"),
                "train_time_s": fit.get("train_time_s"),
                "pictures": [str(run / p) for p in PICTURES if (run / p).is_file()],
            }
        )
    return rows


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def format_table(rows: list[dict], root: Path = Path(".")) -> str:
    """A plain-text table (fixed width, no colour) plus where the plots are."""
    header = ("model", "top1 %", "top5 %", "mean class %", "test clips", "views", "epoch", "train s")
    body = [
        (
            r["model"],
            _pct(r["top1"]),
            _pct(r["top5"]),
            _pct(r["mean_class_acc"]),
            "-" if r["n_clips"] is None else str(r["n_clips"]),
            r["views"] or "-",
            "-" if r["checkpoint_epoch"] is None else f"{r['checkpoint_epoch']}/{r['epochs']}",
            "-" if r["train_time_s"] is None else f"{r['train_time_s']:.0f}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]

    def line(cells) -> str:
        cells = list(cells)
        return "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))

    out = ["Test accuracy (runs/<model>/eval.json)", line(header), line("-" * w for w in widths)]
    out += [line(row) for row in body]
    missing = [r["model"] for r in rows if r["top1"] is None]
    if missing:
        out.append(f"not evaluated yet: {', '.join(missing)} (run `dvc repro`)")
    out.append("")
    out.append("Pictures (PNG, drawn by the trainer; they need no internet):")
    for r in rows:
        if r["pictures"]:
            out.append(f"  {r['model']}: {', '.join(r['pictures'])}")
    html = Path(root) / HTML
    if html.is_file():
        out.append(f"Interactive plots: {html} (its charts load vega from a CDN: blank offline)")
    else:
        out.append(
            "Interactive plots: run `dvc plots show` (writes dvc_plots/index.html; needs a CDN to display)"
        )
    out.append("Metrics of all runs: `dvc metrics show`; experiments: `dvc exp show`")
    return "\n".join(out)


def write_html(root: Path = Path(".")) -> Path | None:
    """Run `dvc plots show` (the dvc next to this Python, else on PATH); returns the page, None if it failed."""
    here = Path(sys.executable).parent / "dvc"
    dvc = str(here) if here.is_file() else shutil.which("dvc")
    if dvc is None:
        return None
    done = subprocess.run(
        [dvc, "plots", "show", "--out", str(HTML.parent)], cwd=root, capture_output=True, text=True
    )
    page = Path(root) / HTML
    return page if done.returncode == 0 and page.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m etl.pipeline_report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository (default: here)")
    parser.add_argument(
        "--html", action="store_true", help="also write dvc_plots/index.html (dvc plots show)"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.html and write_html(args.root) is None:
        print("warning: `dvc plots show` failed; the PNGs are still there", file=sys.stderr)
    rows = summary_rows(args.root)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, args.root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
