"""`actrec-train`: fit, evaluate and predict from the command line (also `python -m train ...` under torchrun)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    Progress,
)
from rich.table import Table
from rich.text import Text

from etl.common.cli_helpers import cells, cli_errors, default_of, err_console, say
from etl.common.errors import ActrecError
from etl.common.progress import progress_bar, progress_columns
from train.config import FitConfig


def fit_default(name: str):
    return default_of(FitConfig, name)


def _plain(value):
    """A parsed option as FitConfig holds it (paths as text, so the config is plain JSON in a checkpoint)."""
    return str(value) if isinstance(value, Path) else value


app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="actrec trainer: fit, evaluate and predict with the three models, streaming from zarr.",
)
console = Console(soft_wrap=True)  # log lines stay whole in files and CI logs
# what `evaluate --scores` keeps: the numbers a user compares across models and experiments (dvc metrics show)
SCORE_KEYS = ("top1", "top5", "mean_class_acc")

StorePath = Annotated[
    Path,
    typer.Argument(
        exists=True,
        file_okay=False,
        help="heatmap store (keypoint store with --source keypoints or --source coordinates)",
    ),
]
Source = Annotated[
    str,
    typer.Option(
        help="heatmaps (the cached store) | keypoints (a keypoint store, rendered on the fly) | coordinates "
        "(a keypoint store's coordinates, for graph models)"
    ),
]
CheckpointPath = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a .pt checkpoint")]


def _is_main_rank() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _plain_log(console: Console):
    """fit's log lines name paths and settings from the user: printed verbatim, never as markup."""
    return lambda message: console.print(message, markup=False, highlight=False)


@app.command()
@cli_errors
def fit(
    store: StorePath,
    model: Annotated[
        str,
        typer.Option(
            help="c3d | cnn_lstm | cnn_lstm_attn (heatmaps) | stgcnpp | ctrgcn (--source coordinates)"
        ),
    ] = fit_default("model"),
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="run folder")] = fit_default(
        "out"
    ),
    preset: Annotated[
        str, typer.Option(help="full (original size) | small (CPU: recipe scaled down) | tiny (tests)")
    ] = fit_default("preset"),
    epochs: Annotated[int | None, typer.Option(min=1, help="default: the model's recipe")] = fit_default(
        "epochs"
    ),
    clip_len: Annotated[
        int | None, typer.Option(min=1, help="frames sampled per clip; default: the model's recipe")
    ] = fit_default("clip_len"),
    batch_size: Annotated[int, typer.Option(min=1, help="an SGD recipe's lr scales with it")] = fit_default(
        "batch_size"
    ),
    optimizer: Annotated[
        str | None, typer.Option(help="adamw | sgd; default: the model's recipe")
    ] = fit_default("optimizer"),
    lr: Annotated[
        float | None, typer.Option(help="learning rate; default: the model's recipe")
    ] = fit_default("lr"),
    momentum: Annotated[
        float | None, typer.Option(min=0.0, help="sgd; default: the model's recipe")
    ] = fit_default("momentum"),
    nesterov: Annotated[bool | None, typer.Option(help="sgd; default: the model's recipe")] = fit_default(
        "nesterov"
    ),
    weight_decay: Annotated[
        float | None, typer.Option(min=0.0, help="default: the model's recipe")
    ] = fit_default("weight_decay"),
    schedule: Annotated[
        str | None, typer.Option(help="cosine | step | constant, per iteration; default: the model's recipe")
    ] = fit_default("schedule"),
    warmup_epochs: Annotated[
        int | None, typer.Option(min=0, help="default: the model's recipe")
    ] = fit_default("warmup_epochs"),
    step_size: Annotated[
        int, typer.Option(min=1, help="schedule step: lr x 0.1 every this many epochs")
    ] = fit_default("step_size"),
    label_smoothing: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="default: the model's recipe")
    ] = fit_default("label_smoothing"),
    grad_clip: Annotated[
        float | None, typer.Option(min=0.0, help="max gradient norm (0 = off); default: the model's recipe")
    ] = fit_default("grad_clip"),
    dropout: Annotated[float | None, typer.Option(help="default: the model's recipe")] = fit_default(
        "dropout"
    ),
    train_where: Annotated[
        str, typer.Option(help="query selecting training clips (pandas syntax, checked)")
    ] = fit_default("train_where"),
    val_where: Annotated[
        str, typer.Option(help="query selecting validation clips (pandas syntax, checked)")
    ] = fit_default("val_where"),
    input_size: Annotated[
        int | None,
        typer.Option(min=0, help="model (test) input size, 0 = the store's; default: the recipe's"),
    ] = fit_default("input_size"),
    train_size: Annotated[
        int | None, typer.Option(min=1, help="training crops are resized to it; default: the recipe's")
    ] = fit_default("train_size"),
    augment: Annotated[bool, typer.Option(help="random resized crop + flip on the device")] = fit_default(
        "augment"
    ),
    workers: Annotated[int, typer.Option(min=0, help="DataLoader worker processes")] = fit_default("workers"),
    seed: Annotated[int, typer.Option()] = fit_default("seed"),
    threads: Annotated[
        int,
        typer.Option(
            min=0, help="CPU threads (fixed: the same numbers on any machine's core count; 0 = all)"
        ),
    ] = fit_default("threads"),
    precision: Annotated[
        str,
        typer.Option(help="auto (bf16 autocast on CUDA, fp32 on a CPU) | bf16 | fp32"),
    ] = fit_default("precision"),
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = fit_default("device"),
    resume: Annotated[
        bool,
        typer.Option(
            help="continue RUN_DIR/last.pt: same settings and data, at most --epochs epochs trained"
        ),
    ] = fit_default("resume"),
    overwrite: Annotated[
        bool,
        typer.Option(help="replace the run in --out (with --resume: only when it cannot be continued)"),
    ] = fit_default("overwrite"),
    source: Source = fit_default("source"),
    renderer: Annotated[
        str,
        typer.Option(help="keypoints: numba (loader workers) | torch (on the device) | auto (torch on CUDA)"),
    ] = fit_default("renderer"),
    channels: Annotated[str, typer.Option(help="keypoints: joints | limbs | joints+limbs")] = fit_default(
        "channels"
    ),
    size: Annotated[int, typer.Option(help="keypoints: heatmap size in pixels (square)")] = fit_default(
        "size"
    ),
    sigma: Annotated[float, typer.Option(help="keypoints: Gaussian sigma in output pixels")] = fit_default(
        "sigma"
    ),
    padding: Annotated[float, typer.Option(help="keypoints: PoseCompact padding")] = fit_default("padding"),
    eps: Annotated[
        float, typer.Option(help="keypoints: joints with a lower score are not drawn")
    ] = fit_default("eps"),
    dtype: Annotated[
        str, typer.Option(help="keypoints: uint8 | float16 (values as a store holds them)")
    ] = fit_default("dtype"),
    stream: Annotated[
        str, typer.Option(help="coordinates: j (joints) | b (bones) | jm | bm (their motion)")
    ] = fit_default("stream"),
    coords: Annotated[
        str, typer.Option(help="coordinates: 2d (x, y, score) | 3d (x, y, z; a store with 3D keypoints)")
    ] = fit_default("coords"),
    strong_augment: Annotated[
        bool, typer.Option(help="coordinates: PYSKL's random rotation and scaling of the keypoints")
    ] = fit_default("strong_augment"),
    init_from: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="start from these weights: an actrec checkpoint, a MMAction2/PYSKL PoseC3D checkpoint (c3d) "
            "or a torchvision ResNet state dict (cnn_lstm, cnn_lstm_attn); see docs/pretrained.md",
        ),
    ] = fit_default("init_from"),
    backbone_lr_scale: Annotated[
        float, typer.Option(min=0.0, help="backbone lr = lr x this (fine-tuning: e.g. 0.1)")
    ] = fit_default("backbone_lr_scale"),
    freeze_backbone_epochs: Annotated[
        int, typer.Option(min=0, help="train only the head for the first N epochs")
    ] = fit_default("freeze_backbone_epochs"),
):
    """Train a model on a heatmap store, or on a keypoint store rendered on the fly (--source keypoints, with the
    render options of `actrec-etl render`); writes last.pt, best.pt, metrics.csv, metrics.json and plots to --out."""
    from train.fit import fit as run_fit

    options = locals()  # exactly the parameters above: one per FitConfig field (tests/test_train_settings.py)
    cfg = FitConfig(**{f.name: _plain(options[f.name]) for f in dataclasses.fields(FitConfig)})
    columns = progress_columns("clips", extra="loss {task.fields[loss]:.3f}")
    with Progress(
        *columns, console=Console(stderr=True, soft_wrap=True), disable=not _is_main_rank()
    ) as progress:

        def epoch_bar(description: str, total: int):
            task = progress.add_task(description, total=total, loss=float("nan"))
            return lambda n, **fields: progress.update(task, advance=n, **fields)

        result = run_fit(
            cfg,
            log=_plain_log(progress.console) if _is_main_rank() else (lambda *_: None),
            progress=epoch_bar,
        )
    if _is_main_rank() and result:
        say(
            f"best validation: top1 {result['val_top1']:.3f}, mean class acc "
            f"{result['val_mean_class_acc']:.3f} (epoch {result['best_epoch']}); run in {out}"
        )


@app.command()
@cli_errors
def evaluate(
    checkpoint: CheckpointPath,
    store: StorePath,
    where: Annotated[
        str | None, typer.Option(help="query selecting the clips (pandas syntax, checked)")
    ] = "split == 'test'",
    clips: Annotated[int, typer.Option(min=1, help="uniformly spaced views per clip")] = 10,
    flip: Annotated[bool, typer.Option(help="also score the mirrored views")] = True,
    out: Annotated[Path | None, typer.Option("--out", "-o", dir_okay=False, help="metrics JSON")] = None,
    scores: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="also write just top1, top5 and mean_class_acc here (DVC metrics)"),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    workers: Annotated[int, typer.Option(min=0)] = 2,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    source: Annotated[
        str | None,
        typer.Option(
            help="heatmaps | keypoints | coordinates [default: what the model consumes: heatmaps, or a keypoint "
            "store's coordinates for a graph model]"
        ),
    ] = None,
):
    """Multi-clip testing of a checkpoint (10 views + flip, averaged, as PoseC3D); writes metrics JSON."""
    from train.checkpoint import load_model
    from train.deploy.evaluation import evaluate_checkpoint
    from train.device import pick_device

    loaded = load_model(checkpoint, pick_device(device))  # checked before the progress bar starts

    with progress_bar("evaluate", unit="clips") as bar:
        seen = [0]

        def advance(n: int) -> None:
            seen[0] += n
            bar.update_to(seen[0])

        metrics = evaluate_checkpoint(
            loaded,
            str(store),
            where=where,
            clips=clips,
            flip=flip,
            batch_size=batch_size,
            workers=workers,
            device=device,
            on_batch=advance,
            source=source,
        )
    say(
        f"{metrics['model']} on {metrics['n_clips']} clips ({clips} views{' + flip' if metrics['flip'] else ''}): "
        f"top1 {metrics['top1']:.3f}, top5 {metrics['top5']:.3f}, "
        f"mean class acc {metrics['mean_class_acc']:.3f}"
    )
    _write_results(metrics, out, scores)


def _write_results(metrics: dict, out: Path | None, scores: Path | None) -> None:
    """evaluate's and fuse's outputs: the whole metrics JSON (--out) and just SCORE_KEYS (--scores)."""
    for path, content in ((out, metrics), (scores, {k: metrics[k] for k in SCORE_KEYS})):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content, indent=2) + "\n")
            say(f"wrote {path}")


@app.command()
@cli_errors
def fuse(
    evals: Annotated[list[Path], typer.Argument(help="two or more `evaluate --out` JSON files (same clips)")],
    weights: Annotated[
        str | None, typer.Option(help="one weight per file, comma-separated (e.g. 2,2,1,1); default: all 1")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", dir_okay=False, help="fused metrics JSON")
    ] = None,
    scores: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="also write just top1, top5 and mean_class_acc here (DVC metrics)"),
    ] = None,
):
    """Fuse runs' per-clip scores (weighted sum, as MMAction2's report_accuracy.py) and score the result."""
    from train.deploy.fuse import fuse_runs

    metrics = fuse_runs(evals, weights)
    inputs = metrics["inputs"]
    parts = ", ".join(f"{n} x{i['weight']:g}" for n, i in zip(_run_names(inputs), inputs, strict=True))
    say(
        f"fused {parts} on {metrics['n_clips']} clips: top1 {metrics['top1']:.3f}, top5 {metrics['top5']:.3f}, "
        f"mean class acc {metrics['mean_class_acc']:.3f}"
    )
    _write_results(metrics, out, scores)


def _run_names(inputs: list[dict]) -> list[str]:
    """What fuse's summary calls each input: its model, and also its run (the folder of an `eval.json`, else the
    file's name) where models repeat (the four streams of one graph network) or the input is itself a fusion."""
    models = [str(i["model"]) for i in inputs]
    repeat = len(set(models)) != len(models)
    runs = [
        Path(i["eval"]).parent.name if Path(i["eval"]).stem == "eval" else Path(i["eval"]).stem
        for i in inputs
    ]
    return [f"{m} ({r})" if repeat or m == "fused" else m for m, r in zip(models, runs, strict=True)]


@app.command()
@cli_errors
def predict(
    checkpoint: CheckpointPath,
    pose_file: Annotated[
        Path, typer.Argument(exists=True, help="a pose file (or folder) of one or more clips")
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="input format, or auto")] = "auto",
    top_k: Annotated[int, typer.Option(min=1)] = 5,
    clips: Annotated[
        int | None, typer.Option(min=1, help="views per clip (per window with --window) [default: 10 (1)]")
    ] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    window: Annotated[
        int, typer.Option(min=0, help="label windows of this many frames over time (0 = one label per clip)")
    ] = 0,
    stride: Annotated[
        int | None, typer.Option(min=1, help="frames between window starts [default: window / 2]")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", dir_okay=False, help="predictions (windows with --window) as .csv or .json"
        ),
    ] = None,
    timeline: Annotated[
        Path | None, typer.Option(dir_okay=False, help="timeline PNG [default: --out with .png]")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the predictions as JSON (attention weights included)")
    ] = False,
    labels: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="labels manifest CSV (clip_id,label_name): true labels, accuracy",
        ),
    ] = None,
    overlay: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False, help="a video input: draw poses and labels on it, into this .mp4 or .gif"
        ),
    ] = None,
):
    """Read a pose file with the checkpoint's settings (heatmaps rendered in memory, or a graph model's coordinates)
    and print the top-k labels (per clip, or per window over time with --window); a folder gets one table, with the
    accuracy when the clips have labels."""
    from train.deploy.predict import resolve_format
    from train.deploy.predict_video import is_video, video_pose_file, write_overlay

    video = pose_file if is_video(pose_file) else None  # a video: its poses first (actrec[video])
    if video is not None:
        pose_file, fmt = video_pose_file(video), "npz"
    elif overlay is not None:
        raise ActrecError("--overlay draws on a video: give a video file, not a pose file")
    picked = resolve_format(pose_file, fmt)
    said = f"format auto: read {pose_file} as {picked}" if fmt == "auto" else None  # once the clips are read
    if window == 0:
        if timeline is not None or stride is not None:
            raise ActrecError("--timeline and --stride need --window (windowed prediction)")
        preds = _predict_clips(
            checkpoint, pose_file, picked, top_k, clips or 10, device, out, as_json, labels, said
        )
        if overlay is not None:
            n = write_overlay(video, pose_file, overlay, top=preds[0].top[0])
            err_console.print(f"wrote {overlay} ({n} frames)", markup=False, highlight=False)
        return
    if as_json or labels is not None:
        raise ActrecError(
            "--json and --labels are for one label per clip; with --window write --out FILE.json"
        )
    fmt = picked
    from train.deploy.windows import plot_timeline, predict_windows, write_windows

    stride = stride or max(1, window // 2)
    results = predict_windows(
        checkpoint, pose_file, window=window, stride=stride, fmt=fmt, clips=clips or 1, device=device
    )
    if said:
        err_console.print(said, markup=False, highlight=False)
    for r in results:
        table = Table(
            "frames", "label", "probability", title=Text(f"{r.clip_id} (window {window}, stride {stride})")
        )
        for i in range(len(r.starts)):
            name, p = r.top(i, 1)[0]
            table.add_row(*cells(f"{r.starts[i]}-{r.ends[i] - 1}", name, f"{p:.3f}"))
        console.print(table)
    if out is not None:
        meta = {
            "checkpoint": str(checkpoint),
            "pose_file": str(pose_file),
            "window": window,
            "stride": stride,
        }
        write_windows(results, out, top_k, meta)
        say(f"wrote {out}")
    png = timeline or (out.with_suffix(".png") if out is not None else None)
    if png is not None:
        for r in results:
            path = png if len(results) == 1 else png.with_name(f"{png.stem}_{r.clip_id}{png.suffix}")
            plot_timeline(r, path)
            say(f"wrote {path}")
    if overlay is not None:
        say(f"wrote {overlay} ({write_overlay(video, pose_file, overlay, windows=results[0])} frames)")


def _predict_clips(checkpoint, pose_file, fmt, top_k, clips, device, out, as_json, labels, said) -> list:
    from train.deploy.predict import accuracy, predict_file, predictions_json, write_predictions

    preds = predict_file(
        checkpoint, pose_file, fmt=fmt, top_k=top_k, clips=clips, device=device, labels=labels
    )
    if said:
        err_console.print(said, markup=False, highlight=False)
    meta = {"checkpoint": str(checkpoint), "pose_file": str(pose_file), "format": fmt}
    if out is not None:
        write_predictions(preds, out, meta)
    if as_json:
        print(predictions_json(preds, meta))
    elif len(preds) == 1:
        pred = preds[0]
        truth = f" (true label: {pred.true_label})" if pred.true_label is not None else ""
        table = Table("label", "probability", title=Text(pred.clip_id + truth))
        for name, p in pred.top:
            table.add_row(*cells(name, f"{p:.3f}"))
        console.print(table)
    else:  # a folder: one row per clip
        table = Table("file", "clip", "predicted", "probability", "true label", title=Text(str(pose_file)))
        for pred in preds:
            name, p = pred.top[0]
            shown = Path(pred.source).name or pred.source
            table.add_row(*cells(shown, pred.clip_id, name, f"{p:.3f}", pred.true_label or "-"))
        console.print(table)
    correct, labelled = accuracy(preds)
    if labelled and not as_json:
        say(f"accuracy {correct}/{labelled} = {correct / labelled:.3f} (top-1, clips with a true label)")
    if out is not None:
        err_console.print(f"wrote {out}", markup=False, highlight=False)  # stdout may be the JSON
    return preds


@app.command()
@cli_errors
def convert(
    src: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="a PoseC3D .pth from the model zoo")
    ],
    source: Annotated[str, typer.Option("--from", help="mmaction2 | pyskl")],
    classes: Annotated[str, typer.Option(help="number of classes, or a text file with one name per line")],
    out: Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="actrec checkpoint to write")],
    layout: Annotated[str, typer.Option(help="skeleton layout the model was trained on")] = "coco17",
    channels: Annotated[str, typer.Option(help="joints | limbs (PoseC3D's joint or limb model)")] = "joints",
    sigma: Annotated[
        float | None, typer.Option(help="heatmap sigma [default: from the file's config, or 0.6]")
    ] = None,
    size: Annotated[
        int | None, typer.Option(help="heatmap size [default: from the file's config, or 64]")
    ] = None,
    clip_len: Annotated[
        int | None, typer.Option(help="frames per view [default: from the config, or 48; ST-GCN++: 100]")
    ] = None,
    stream: Annotated[
        str, typer.Option(help="ST-GCN++: the stream it was trained on: j | b | jm | bm")
    ] = "j",
    coords: Annotated[str, typer.Option(help="ST-GCN++: 2d (x, y, score) | 3d (x, y, z)")] = "2d",
):
    """Turn a PoseC3D or ST-GCN++ checkpoint (MMAction2 1.x/0.x, PYSKL; recognised by its keys) into an actrec
    checkpoint for evaluate/predict/fit."""
    from train.deploy.convert import convert as run_convert

    report = run_convert(
        src,
        source=source,
        layout=layout,
        channels=channels,
        classes=classes,
        out=out,
        sigma=sigma,
        size=size,
        clip_len=clip_len,
        stream=stream,
        coords=coords,
    )
    settings = ", ".join(f"{k} {v}" for k, v in report.settings.items())
    say(
        f"wrote {report.out}: {report.model_name}, {report.in_channels} channels, {report.num_classes} classes, "
        f"{report.n_tensors} tensors; {settings}"
    )
    for note in report.notes:
        say(f"note: {note}")


@app.command()
@cli_errors
def export(
    checkpoint: CheckpointPath,
    fmt: Annotated[str, typer.Option("--format", "-f", help="torchscript | onnx")] = "torchscript",
    out: Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="model file to write")] = Path(
        "model.pt"
    ),
):
    """Export a checkpoint as TorchScript or ONNX: input (B, C, T, H, W) float in [0, 1], output logits; class
    names and render settings inside the file and in FILE.json."""
    from train.deploy.export import export_model

    report = export_model(checkpoint, out, fmt)
    say(
        f"wrote {report.out} ({report.fmt}) and {report.sidecar}; max |logit difference| vs PyTorch "
        f"{report.max_abs_diff:.2e}"
    )


if __name__ == "__main__":
    app()
