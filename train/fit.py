"""`actrec-train fit`: the training loop, top to bottom in the order it runs.

set-up (device, DDP, seeds) -> data (clip selection, datasets, loaders) -> model -> optimizer + schedule ->
resume -> for each epoch: train, validate, log, checkpoint, plot -> metrics.json.

Determinism: every random draw is seeded from (seed, epoch[, clip]), so a run resumed from `last.pt` continues
exactly as if it had never stopped (tested), and CPU runs repeat bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F

import etl
from etl.errors import ActrecError
from etl.heatmap_store import reading_store, value_scale
from etl.storeio import SEAL_KEY, exclusive_lock
from train.augment import resize, to_model_input
from train.checkpoint import (
    check_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)
from train.config import FitConfig
from train.data import EpochSampler, TimedLoader, make_loader, select_clips
from train.device import init_distributed, pick_device
from train.evaluation import predict_loader
from train.metrics import classification_metrics
from train.models import build_model, count_parameters
from train.optim import build_optimizer
from train.plots import plot_attention, plot_confusion, plot_curves
from train.pretrained import freeze_backbone_statistics, init_from
from train.recipes import FIELDS, SGD_ONLY, resolve
from train.seeding import derived_seed, torch_generator
from train.sources import clip_dataset, open_source, resolve_renderer, train_input

# Fields that may differ between a run and its resumption (they do not change what is learned).
RESUME_FREE = {"epochs", "resume", "overwrite", "workers", "device", "out", "store"}  # store: by content
# What a run folder holds; --overwrite removes these before training from scratch (no stale plots or best.pt).
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "metrics.json", "timing.csv", "timing.json")
# Wall-clock measurements go to timing.csv / timing.json only: checkpoints, metrics.csv and metrics.json hold what
# the run computed, byte for byte the same on a rerun, so the DVC lock of a demo does not change with the
# machine's load (a fresh `make demo` leaves `git status` clean).
TIMING = ("epoch_s", "train_clips_per_s", "data_wait_share", "peak_gpu_mem_gb")
RUN_PLOTS = ("curves.png", "confusion.png", "attention.png")


def fit(cfg: FitConfig, log: Callable[[str], None] = print, progress=None) -> dict:
    """Train cfg.model on cfg.store; returns the final metrics dict (also written to RUN_DIR/metrics.json).

    `progress(kind, total)` may return a callback `advance(n, **fields)` for a progress bar (CLI only).
    The store is read under a shared lock (no render replaces it meanwhile) and the run folder is locked
    (two fits never write one --out)."""
    cfg.check()
    main_rank = int(os.environ.get("RANK", "0")) == 0
    run_lock = exclusive_lock(Path(cfg.out), "fit") if main_rank else nullcontext()
    with reading_store(cfg.store, "fit"), run_lock:
        return _fit(cfg, log, progress)


def _fit(cfg: FitConfig, log: Callable[[str], None], progress) -> dict:
    out = Path(cfg.out)

    # ---- set-up: device, distributed, determinism
    rank, world = init_distributed()
    device = pick_device(cfg.device, rank)
    main = rank == 0
    torch.manual_seed(derived_seed(cfg.seed, "init"))
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    plots = out / "plots"  # curves.png, confusion.png, attention.png (models with attention)

    # ---- data: clips chosen by pandas queries on the clip table; the store gives channels, size, classes
    store = open_source(cfg.source, cfg.store, cfg.render_spec())
    renderer = resolve_renderer(cfg.renderer, device)
    attrs = store.attrs
    classes = store.classes
    scale = value_scale(store.spec.dtype)
    # ---- the recipe: the model's own, scaled by the preset, overridden by options (train/recipes.py)
    recipe = resolve(
        cfg.model,
        cfg.preset,
        {k: getattr(cfg, k) for k in FIELDS},
        batch_size=cfg.batch_size,
        store_size=store.spec.size,
        pretrained=cfg.init_from is not None,
    )
    cfg = replace(cfg, **recipe.values)  # every recipe field resolved from here on (and saved so)
    cfg.check()
    input_size = cfg.input_size
    train_rows = select_clips(store, cfg.train_where)
    val_rows = select_clips(store, cfg.val_where)
    train_set = clip_dataset(
        store,
        train_rows,
        clip_len=cfg.clip_len,
        train=True,
        seed=cfg.seed,
        input_size=cfg.train_size,
        augment=cfg.augment,
        renderer=renderer,
    )
    val_set = clip_dataset(store, val_rows, clip_len=cfg.clip_len, train=False, num_clips=1)
    to_input = train_input(
        store, device=device, scale=scale, input_size=cfg.train_size, augment=cfg.augment, renderer=renderer
    )
    train_sampler = EpochSampler(len(train_set), shuffle=True, seed=cfg.seed, rank=rank, world_size=world)
    train_loader = make_loader(
        train_set,
        train_sampler,
        batch_size=cfg.batch_size,
        workers=cfg.workers,
        device=device,
        seed=cfg.seed,
        collate_fn=getattr(train_set, "collate", None),
    )
    val_loader = make_loader(
        val_set,
        EpochSampler(len(val_set), shuffle=False, pad=False),
        batch_size=cfg.batch_size,
        workers=cfg.workers,
        device=device,
        seed=cfg.seed,
    )

    # ---- resume: only from a run with the same settings and fewer epochs; never replace a run unasked
    data_id = _store_identity(attrs)
    code = code_digest()
    ckpt = _starting_checkpoint(out / "last.pt", cfg, data_id, log, code)
    if main:
        log(recipe.line())
    if main:
        if ckpt is None:
            _clear_run(out)
        plots.mkdir(parents=True, exist_ok=True)

    # ---- model
    if ckpt is not None:
        model = model_from_checkpoint(ckpt, out / "last.pt")
    else:
        model, _ = build_model(cfg.model, cfg.preset, len(store.channels), len(classes), dropout=cfg.dropout)
    init_record = ckpt.get("init_from") if ckpt is not None else None
    if ckpt is None and cfg.init_from:
        report = init_from(model, cfg.model, cfg.init_from)
        init_record = report.as_dict()  # the source's sha256 travels with every checkpoint of the run
        for line in report.lines() if main else ():
            log(line)
    model_config = asdict(model.config)
    # channels-last on every device: oneDNN's CPU convolutions are 1.2x faster in it too (docs/benchmarks.md)
    model.to(device, memory_format=model.memory_format)
    train_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    # ---- optimizer and schedule (stepped per iteration: train/optim.py)
    steps_per_epoch = len(train_loader)
    optimizer, scheduler, factors = build_optimizer(
        model,
        recipe.values,
        steps_per_epoch,
        backbone_lr_scale=cfg.backbone_lr_scale,
        freeze_backbone_epochs=cfg.freeze_backbone_epochs,
        step_size=cfg.step_size,
    )
    start_epoch, best, history = 0, -1.0, []
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        restore_rng_states(ckpt["rng"])
        start_epoch, best = int(ckpt["epoch"]) + 1, float(ckpt["best_metric"])
        # The schedule is a function of the iteration: continue at this epoch's first one. With the same
        # --epochs this is what an uninterrupted run uses; with more, the schedule is stretched to the new
        # length from here on (for cosine: a warm restart at the stretched curve's value).
        scheduler.last_epoch = start_epoch * steps_per_epoch
        for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, factors, strict=True):
            group["lr"] = base * factor(scheduler.last_epoch)
        history = list(ckpt["history"])  # rows of epochs 1..start_epoch (1-based)
        if start_epoch < cfg.epochs:
            log(f"resuming {out / 'last.pt'} at epoch {start_epoch + 1}/{cfg.epochs} (best {best:.3f})")
        else:
            log(f"{out / 'last.pt'} has trained all {cfg.epochs} epochs already: nothing to train")
    if main:
        n_params = count_parameters(model)
        log(
            f"{cfg.model} ({cfg.preset}, {n_params / 1e6:.2f}M params) on {device}"
            f"{f' x{world}' if world > 1 else ''}: {len(train_set)} train / {len(val_set)} val clips, "
            f"{len(store.channels)} channels, {cfg.clip_len} frames, {input_size} px, from {cfg.source}"
            f"{', bf16 autocast' if cfg.bf16(device.type) else ''}"
            f"{f' ({renderer} renderer)' if cfg.source == 'keypoints' else ''}"
        )

    run = {  # what every checkpoint of this run carries besides the epoch's own state
        "model_name": cfg.model,
        "model_config": model_config,
        "fit_config": asdict(cfg),
        "classes": classes,
        "render": store.spec.to_checkpoint(store.layout, input_size),
        "source": cfg.source,
        "data": data_id,
        "init_from": init_record,
        "recipe": recipe.as_dict(),  # where each resolved value came from; fit_config holds the values
    }
    for epoch in range(start_epoch, cfg.epochs):
        advance = (
            progress(f"epoch {epoch + 1}/{cfg.epochs}", len(train_sampler)) if progress and main else None
        )
        train_sampler.set_epoch(epoch)
        row = {"epoch": epoch + 1}
        row |= train_one_epoch(
            train_model,
            model,
            optimizer,
            scheduler,
            train_loader,
            to_input,
            cfg,
            epoch,
            device,
            rank,
            world,
            advance,
        )
        if main:  # validate on rank 0, log, checkpoint, plot
            probs, labels_np, val_loss = predict_loader(
                model, val_loader, device, scale=scale, input_size=input_size, autocast=cfg.bf16(device.type)
            )
            m = classification_metrics(probs, labels_np, classes)
            row |= {
                "val_loss": val_loss,
                "val_top1": m["top1"],
                "val_top5": m["top5"],
                "val_mean_class_acc": m["mean_class_acc"],
            }
            timing = {"epoch": row["epoch"]} | {k: row.pop(k) for k in TIMING}
            history.append(row)
            is_best = m["mean_class_acc"] > best
            best = max(best, m["mean_class_acc"])
            log(_epoch_line(row | timing, cfg.epochs, is_best, cuda))
            _write_timing(out, timing | {"code_sha256": code})
            state = {
                **run,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "best_metric": best,
                "rng": rng_states(),
                "history": history,
                "val_metrics": {k: v for k, v in m.items() if k != "confusion_matrix"},
            }
            store.check_unchanged()  # never checkpoint an epoch whose data came from a replaced store
            save_epoch(out, state, m["confusion_matrix"], is_best, f"{cfg.model} ({cfg.preset})")
        if world > 1:
            dist.barrier()

    # ---- final: metrics.json, attention plot
    result = {}
    if main:
        result = _final_metrics(out, history, cfg) | _final_timing(out)
        if model.has_attention and history:
            _plot_attention(model, val_set, val_rows, device, scale, input_size, plots / "attention.png")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


def train_one_epoch(
    train_model,
    model,
    optimizer,
    scheduler,
    loader,
    to_input,
    cfg: FitConfig,
    epoch: int,
    device,
    rank,
    world,
    advance,
) -> dict:
    """One pass over the epoch's clips; returns the epoch's training metrics (means over all ranks)."""
    t0 = time.perf_counter()
    torch.manual_seed(
        derived_seed(cfg.seed, "model", epoch)
    )  # dropout: a function of the epoch (exact resume)
    aug_gen = torch_generator(cfg.seed, "augment", epoch, rank)
    train_model.train()
    freeze_backbone_statistics(model, epoch, cfg.freeze_backbone_epochs)
    cuda, bf16 = device.type == "cuda", cfg.bf16(device.type)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    loss_sum, correct, seen = 0.0, 0, 0
    lr = optimizer.param_groups[-1]["lr"]
    batches = TimedLoader(loader)  # measures the time the step waits for the loader
    for views, labels in batches:
        x = to_input(views, aug_gen)  # (B, C, T, S, S) float, augmented as --source says
        x = x.contiguous(memory_format=torch.channels_last_3d)  # channels innermost, as the model's weights
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = train_model(x)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        lr = optimizer.param_groups[-1]["lr"]  # the head's (the only group unless fine-tuning)
        scheduler.step()
        loss_sum += loss.item() * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        if advance:
            advance(len(labels), loss=loss_sum / seen)
    seconds = time.perf_counter() - t0
    train_loss, train_top1 = _reduce((loss_sum, correct, seen), device, world)
    return {
        "train_loss": train_loss,
        "train_top1": train_top1,
        "lr": lr,
        "epoch_s": seconds,
        "train_clips_per_s": seen * world / seconds,
        "data_wait_share": batches.wait_s / seconds,
        "peak_gpu_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else 0.0,
    }


def save_epoch(out: Path, state: dict, confusion, is_best: bool, title: str) -> None:
    """metrics.csv, the plots, best.pt, then last.pt: last.pt goes last, so whatever a resume from it implies
    is on disk first."""
    history = pd.DataFrame(state["history"])
    history.to_csv(out / "metrics.csv", index=False)
    plot_curves(history, out / "plots" / "curves.png", title)
    # the latest epoch's, as last.pt (what `evaluate` scores in the DVC pipeline), not best.pt's
    epoch = state["epoch"] + 1
    plot_confusion(
        np.asarray(confusion),
        state["classes"],
        out / "plots" / "confusion.png",
        f"{state['model_name']}: validation, epoch {epoch} (last.pt)",
    )
    if is_best:
        save_checkpoint(out / "best.pt", state)
    save_checkpoint(out / "last.pt", state)


def _epoch_line(row: dict, epochs: int, is_best: bool, cuda: bool) -> str:
    return (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.3f} top1 {row['train_top1']:.3f} | "
        f"val loss {row['val_loss']:.3f} top1 {row['val_top1']:.3f} mean-class {row['val_mean_class_acc']:.3f}"
        f"{' (best)' if is_best else ''} | {row['train_clips_per_s']:.1f} clips/s, "
        f"{row['data_wait_share']:.0%} waiting for data"
        + (f", peak GPU memory {row['peak_gpu_mem_gb']:.1f} GiB" if cuda else "")
    )


def _store_identity(attrs: dict) -> dict:
    """What the model learns from: the render settings, the keypoints they were rendered from, and the clip
    table (labels, splits: its sha256 from the store's seal)."""
    return {
        "render": attrs["fingerprint"],
        "keypoints": attrs["keypoints"]["content_hash"],
        "clips": attrs[SEAL_KEY]["files"]["clips.parquet"],
    }


def _starting_checkpoint(path: Path, cfg: FitConfig, data_id: dict, log, code: str) -> dict | None:
    """The checkpoint to continue from, or None to train from scratch. A run in `out` is continued only with
    --resume, when its settings and data match and it has at most cfg.epochs epochs; it is replaced only with
    --overwrite; anything else is refused, so a result is never reported under settings it was not trained with."""
    if not path.exists():
        if cfg.resume:
            log(f"--resume: no {path} yet, starting a new run")
        return None
    ckpt = load_checkpoint(path)
    check_checkpoint(ckpt, path, resume=True)
    done, saved = int(ckpt["epoch"]) + 1, ckpt["fit_config"]
    what = f"{ckpt['model_name']}, {done}/{saved.get('epochs', '?')} epochs"
    if not cfg.resume:
        if cfg.overwrite:
            log(f"--overwrite: replacing the run in {path.parent} ({what})")
            return None
        raise ActrecError(
            f"{path.parent} already holds a run ({what}): pass --resume to continue it, --overwrite to replace "
            "it, or another --out"
        )
    # Resolved values against resolved values: `--lr 0.0125` resumes a run whose recipe gave 0.0125.
    saved = _saved_settings(ckpt)
    free = RESUME_FREE | (set(SGD_ONLY) if cfg.optimizer == saved["optimizer"] == "adamw" else set())
    changed = sorted(k for k, v in asdict(cfg).items() if k not in free and saved[k] != v)
    if "recipe" not in ckpt:
        changed.append("its schedule was stepped per epoch (an older actrec), now per iteration")
    if ckpt.get("data") != data_id:
        changed.append("the heatmap store's contents or its clip table (labels, splits)")
    if ckpt["model_name"] != cfg.model and "model" not in changed:
        changed.append("model")
    if changed:
        reason = f"it was trained with different settings ({', '.join(changed)})"
    elif done > cfg.epochs:
        reason = (
            f"it has {done} epochs, more than the {cfg.epochs} asked (its schedule was for {saved['epochs']})"
        )
    else:
        trained_with = _trained_with(
            path.parent / "timing.csv"
        )  # a damaged file stops here, before any training
        if trained_with in (None, code):
            return ckpt
        if done < cfg.epochs or not cfg.overwrite:
            log(
                f"note: {path} was trained with other actrec code (etl/, train/ sources); "
                + (
                    "continuing it with this code"
                    if done < cfg.epochs
                    else "--overwrite retrains it with this code"
                )
            )
            return ckpt
        # A finished run, rerun on purpose (as `dvc repro` does after a code change): its results must come from
        # this code, not stand unchanged under it.
        reason = "it is finished and was trained with other actrec code (etl/, train/ sources)"
    if not cfg.overwrite:
        raise ActrecError(
            f"cannot resume {path}: {reason}; pass --overwrite to train from scratch into {path.parent}, or "
            "another --out"
        )
    log(f"--resume: not continuing {path}: {reason}; --overwrite: training from scratch")
    return None


def _saved_settings(ckpt: dict) -> dict:
    """The checkpoint's fit config with every recipe field resolved. Checkpoints before per-model recipes
    (no "recipe" key) saved explicit values, except: dropout None (the model config's), input_size 0 (the
    store's), AdamW with no train_size (= input size); a field the saved config predates (e.g. the fine-tuning
    options) had its default value then."""
    saved = dict(ckpt["fit_config"])
    if "recipe" not in ckpt:
        size = int(ckpt["render"]["input_size"])
        legacy = {
            "optimizer": "adamw",
            "momentum": 0.9,
            "nesterov": False,
            "input_size": size,
            "train_size": size,
        }
        saved = {**legacy, **{k: v for k, v in saved.items() if v is not None and k not in ("input_size",)}}
        saved.setdefault("dropout", ckpt["model_config"].get("dropout"))
    defaults = {f.name: f.default for f in fields(FitConfig)}
    return {k: saved.get(k, default) for k, default in defaults.items()}


def _clear_run(out: Path) -> None:
    """Before training from scratch: remove what an earlier run left (its checkpoints, metrics and plots)."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in RUN_PLOTS:
        (out / "plots" / name).unlink(missing_ok=True)


def _reduce(sums: tuple[float, int, int], device, world: int) -> tuple[float, float]:
    """(loss, top-1) means over all ranks from each rank's (loss sum, correct, seen)."""
    loss_sum, correct, seen = sums
    if world > 1:
        t = torch.tensor(sums, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        loss_sum, correct, seen = t.tolist()
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def _final_metrics(out: Path, history: list[dict], cfg: FitConfig) -> dict:
    if not history:
        return {}
    best = max(history, key=lambda r: r["val_mean_class_acc"])
    last = history[-1]
    result = {
        "model": cfg.model,
        "preset": cfg.preset,
        "epochs": last["epoch"],
        "best_epoch": best["epoch"],
        "val_top1": best["val_top1"],
        "val_top5": best["val_top5"],
        "val_mean_class_acc": best["val_mean_class_acc"],
        "last_val_top1": last["val_top1"],
        "last_val_mean_class_acc": last["val_mean_class_acc"],
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _write_timing(out: Path, timing: dict) -> None:
    """timing.csv: one row per epoch; a resumed run replaces the rows from the epoch it redoes on."""
    path = out / "timing.csv"
    rows = _read_timing(path) if path.exists() else pd.DataFrame(columns=["epoch", *TIMING])
    rows = rows[rows.epoch < timing["epoch"]]
    tmp = path.with_name(path.name + ".tmp")  # replaced in one step: an interrupted write leaves the old file
    pd.concat([rows, pd.DataFrame([timing])], ignore_index=True).to_csv(tmp, index=False)
    os.replace(tmp, path)


PACKAGES = (Path(etl.__file__).resolve().parent, Path(__file__).resolve().parent)  # etl/, train/


def code_digest(packages: tuple[Path, ...] = PACKAGES) -> str:
    """sha256 of the etl and train packages' Python sources: the code a run's epochs were trained with."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            digest.update(f"{package.name}/{path.relative_to(package)}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def _trained_with(path: Path) -> str | None:
    """The code digest of the last epoch in timing.csv; None when unknown (no file, or a run from before)."""
    if not path.exists():
        return None
    rows = _read_timing(path)
    if "code_sha256" not in rows.columns or rows.empty:
        return None
    value = rows.sort_values("epoch").code_sha256.iloc[-1]
    return value if isinstance(value, str) else None


def _read_timing(path: Path) -> pd.DataFrame:
    """The rows of timing.csv, or an ActrecError that says how to go on (it only holds wall-clock figures)."""
    try:
        rows = pd.read_csv(path, dtype={"code_sha256": str})  # hex digits can read as a number
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # pandas' parser errors are ValueErrors
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    else:
        missing = [c for c in ("epoch", *TIMING) if c not in rows.columns]
        numeric = [
            c for c in rows.columns if c in ("epoch", *TIMING) and not pd.api.types.is_numeric_dtype(rows[c])
        ]
        if not missing and not numeric:
            return rows
        problem = f"missing columns {missing}" if missing else f"non-numeric values in {numeric}"
    raise ActrecError(
        f"{path} is damaged ({problem}). It holds only the wall-clock figures and code digests of the epochs "
        f"trained so far "
        f"(weights, metrics and history are in last.pt): delete it to continue the run, or pass --overwrite "
        f"to train from scratch."
    )


def _final_timing(out: Path) -> dict:
    """timing.json: median clips/s and data-wait share, total training seconds, peak GPU memory."""
    path = out / "timing.csv"
    if not path.exists():
        return {}
    rows = _read_timing(path)
    result = {
        "train_clips_per_s": float(rows.train_clips_per_s.median()),
        "train_time_s": float(rows.epoch_s.sum()),
        "data_wait_share": float(rows.data_wait_share.median()),
        "peak_gpu_mem_gb": float(rows.peak_gpu_mem_gb.max()),
    }
    (out / "timing.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


@torch.no_grad()
def _plot_attention(
    model, val_set, val_rows: pd.DataFrame, device, scale, input_size, path: Path, n: int = 4
) -> None:
    model.eval()
    picks = np.linspace(0, len(val_set) - 1, num=min(n, len(val_set))).round().astype(int)
    views = torch.stack([val_set[int(i)][0][0] for i in picks])  # (N, T, C, S, S)
    x = resize(to_model_input(views.to(device), scale), input_size)
    _, weights = model(x, return_attention=True)
    names = [f"{val_rows['clip_id'].iat[i]} ({val_rows['label_name'].iat[i]})" for i in picks]
    plot_attention(weights.float().cpu().numpy(), names, path)
