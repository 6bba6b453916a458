"""The summary after `dvc repro`: one row per model with its test accuracies, and where the pictures are.

    actrec-etl report            # table of runs/<model>/eval.json (+ best validation epoch), and runs/fused/'s
    actrec-etl report --html     # also write runs/report.html: one self-contained page (table + PNGs inline)
    actrec-etl report --json     # the rows as JSON

Reads the files the pipeline wrote (dvc.yaml decides which models); a model whose stage has not run yet is
listed as missing; the fusion of the models' scores (the `fuse` stage: runs/fused/eval.json) is a last row when
it exists. Nothing to report at all (no dvc.yaml, no run with results) is an error. `summary_rows`,
`format_table` and `html_report` are the library part (no printing).
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import sys
from pathlib import Path

from etl.common.errors import ActrecError

DEFAULT_MODELS = ("c3d", "cnn_lstm", "cnn_lstm_attn")
PICTURES = ("plots/curves.png", "plots/confusion.png", "plots/attention.png")
FUSED = Path("runs") / "fused" / "eval.json"  # `actrec-train fuse` (the pipeline's fuse stage)
HTML = Path("dvc_plots") / "index.html"
REPORT = Path("runs") / "report.html"


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
        timing = _read_json(run / "timing.json") or fit  # older runs kept their timing in metrics.json
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
                "train_time_s": timing.get("train_time_s"),
                "pictures": [str(run / p) for p in PICTURES if (run / p).is_file()],
                "fused_from": None,
            }
        )
    fused = _read_json(root / FUSED)
    if isinstance(fused, dict):
        rows.append(_fused_row(fused))
    return rows


def _fused_row(ev: dict) -> dict:
    """The row of runs/fused/eval.json: its test metrics and what it fused ("c3d x1 + cnn_lstm x1 ...")."""
    inputs = ev.get("inputs") if isinstance(ev.get("inputs"), list) else []
    parts = [
        f"{i.get('model')} x{i['weight']:g}"
        for i in inputs
        if isinstance(i, dict) and isinstance(i.get("weight"), int | float)
    ]
    return {
        "model": "fused",
        "top1": ev.get("top1"),
        "top5": ev.get("top5"),
        "mean_class_acc": ev.get("mean_class_acc"),
        "n_clips": ev.get("n_clips"),
        "views": None,
        "checkpoint_epoch": None,
        "epochs": None,
        "val_mean_class_acc": None,
        "train_time_s": None,
        "pictures": [],
        "fused_from": " + ".join(parts),  # "" when the file does not say
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _cells(r: dict) -> tuple[str, ...]:
    """One row's cells as text, for the plain table and the HTML page alike."""
    return (
        r["model"],
        _pct(r["top1"]),
        _pct(r["top5"]),
        _pct(r["mean_class_acc"]),
        "-" if r["n_clips"] is None else str(r["n_clips"]),
        r["views"] or "-",
        "-" if r["checkpoint_epoch"] is None else f"{r['checkpoint_epoch']}/{r['epochs']}",
        "-" if r["train_time_s"] is None else f"{r['train_time_s']:.0f}",
    )


def format_table(rows: list[dict], root: Path = Path(".")) -> str:
    """A plain-text table (fixed width, no colour) plus where the plots are."""
    header = ("model", "top1 %", "top5 %", "mean class %", "test clips", "views", "epoch", "train s")
    body = [_cells(r) for r in rows]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]

    def line(cells) -> str:
        cells = list(cells)
        return "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))

    out = ["Test accuracy (runs/<model>/eval.json)", line(header), line("-" * w for w in widths)]
    out += [line(row) for row in body]
    missing = [r["model"] for r in rows if r["top1"] is None]
    if missing:
        out.append(f"not evaluated yet: {', '.join(missing)} (run `dvc repro`)")
    out += [
        f"fused: per clip, the weighted sum of {r['fused_from']} ({FUSED})" for r in rows if r["fused_from"]
    ]
    out.append("")
    out.append("Pictures (PNG, drawn by the trainer; they need no internet):")
    for r in rows:
        if r["pictures"]:
            out.append(f"  {r['model']}: {', '.join(r['pictures'])}")
    page = Path(root) / REPORT
    if page.is_file():
        out.append(f"Report page (table + pictures, works offline): {page}")
    else:
        out.append("Report page (table + pictures, works offline): `actrec-etl report --html`")
    out.append("DVC's interactive plots: `dvc plots show` (dvc_plots/index.html; its charts need a CDN)")
    out.append("Metrics of all runs: `dvc metrics show`; experiments: `dvc exp show`")
    return "\n".join(out)


def require_results(rows: list[dict], root: Path = Path(".")) -> list[dict]:
    """The rows, unless there is nothing to report: then an error that says what to run."""
    root = Path(root)
    if not any(r["top1"] is not None or r["epochs"] is not None for r in rows):
        where = "no dvc.yaml" if not (root / "dvc.yaml").is_file() else "dvc.yaml, but no results yet"
        raise ActrecError(
            f"nothing to report in {root.resolve()}: {where} (no runs/<model>/eval.json or metrics.json); "
            "run `make demo` (or `dvc repro`) there, or pass --root to the repository"
        )
    return rows


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f2f2f2}img{max-width:100%;margin:.5em 0}
.missing{color:#999}"""


def html_report(rows: list[dict]) -> str:
    """One self-contained HTML page: the results table and every run's PNGs inline (data URIs), no scripts and
    no links, so it shows the same offline, from an e-mail attachment or a CI artifact."""
    header = (
        "model",
        "test top-1 %",
        "top-5 %",
        "mean class acc. %",
        "test clips",
        "views",
        "epoch",
        "train s",
    )
    body = []
    for r in rows:
        cells = _cells(r)
        cls = ' class="missing"' if r["top1"] is None else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>actrec results</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>actrec results</h1>",
        "<p>Test accuracy per model (runs/&lt;model&gt;/eval.json); pictures drawn by the trainer.</p>",
        '<table id="results"><thead><tr>'
        + "".join(f"<th>{html.escape(h)}</th>" for h in header)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>",
    ]
    for r in rows:
        if r["fused_from"] is not None:  # the fusion draws no pictures
            continue
        parts.append(f"<h2>{html.escape(r['model'])}</h2>")
        if not r["pictures"]:
            parts.append('<p class="missing">no pictures yet (run `dvc repro`)</p>')
        for pic in r["pictures"]:
            name = Path(pic).name
            parts.append(
                f'<figure><img alt="{html.escape(r["model"])} {html.escape(name)}" src="{_data_uri(Path(pic))}">'
                f"<figcaption>{html.escape(pic)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(rows: list[dict], out: Path) -> Path:
    """Write html_report(rows) to `out` atomically (the page is rewritten on every report)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html_report(rows), encoding="utf-8")
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m etl.commands.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository (default: here)")
    parser.add_argument("--html", action="store_true", help=f"also write {REPORT} (self-contained page)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        rows = require_results(summary_rows(args.root), args.root)
    except ActrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.html:
        write_report(rows, Path(args.root) / REPORT)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, args.root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
