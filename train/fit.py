"""`actrec-train fit`: the training loop, top to bottom in the order it runs: set-up (device, DDP, seeds) ->
data (clip selection, datasets, loaders) -> model -> optimizer + schedule -> resume -> for each epoch:
`train_one_epoch`, `validate`, log, `save_epoch` (checkpoint, plots) -> metrics.json. The run folder's rules
(resume checks, timing.csv, code digest, lock) are train/run_dir.py's; where clips come from, train/sources/.

Determinism: every random draw is seeded from (seed, epoch[, clip]), so a run resumed from `last.pt` continues
exactly as if it had never stopped (tested), and CPU runs repeat bit for bit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F

from etl.stores.heatmap_store import reading_store
from train.checkpoint import model_from_checkpoint, rng_states, save_checkpoint
from train.config import COORDINATE_FIELDS, FitConfig
from train.deploy.evaluation import attention_of_views, validate
from train.deploy.pretrained import freeze_backbone_statistics, init_from
from train.device import init_distributed, mean_over_ranks, pick_device
from train.models import MODELS, build_model, config_dict, count_parameters
from train.optim import build_optimizer
from train.plots import plot_attention, plot_confusion, plot_curves
from train.recipes import FIELDS, resolve
from train.run_dir import (
    TIMING,
    clear_run,
    code_digest,
    final_metrics,
    final_timing,
    resume_state,
    run_lock,
    starting_checkpoint,
    write_timing,
)
from train.seeding import derived_seed, torch_generator
from train.sources import check_pairing, open_source, resolve_renderer
from train.sources.loading import EpochSampler, TimedLoader, make_loader, select_clips


def fit(cfg: FitConfig, log: Callable[[str], None] = print, progress=None) -> dict:
    """Train cfg.model on cfg.store; returns the final metrics dict (also written to RUN_DIR/metrics.json).
    `progress(kind, total)` may return a callback `advance(n, **fields)` for a progress bar (CLI only). The store
    is read under a shared lock (no render replaces it meanwhile), the run folder is locked (one fit per --out)."""
    cfg.check()
    main_rank = int(os.environ.get("RANK", "0")) == 0
    with reading_store(cfg.store, "fit"), run_lock(Path(cfg.out), main_rank):
        return _fit(cfg, log, progress)


@dataclass
class TrainStep:
    """What train_one_epoch needs besides the epoch: the model (and its DDP wrapper), optimizer, data, run."""

    train_model: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loader: torch.utils.data.DataLoader
    to_input: Callable[[object, torch.Generator], torch.Tensor]  # the source's batch -> model input
    cfg: FitConfig
    device: torch.device
    rank: int = 0
    world: int = 1


def _fit(cfg: FitConfig, log: Callable[[str], None], progress) -> dict:
    out = Path(cfg.out)
    plots = out / "plots"  # curves.png, confusion.png, attention.png (models with attention)
    rank, world, device = _set_up(cfg)
    main, cuda = rank == 0, device.type == "cuda"

    # ---- data: clips chosen by pandas queries on the clip table; the store gives channels, size, classes
    check_pairing(cfg.model, MODELS[cfg.model][0].consumes, cfg.source)
    store = open_source(cfg.source, cfg.store, cfg.render_spec(), cfg.coordinate_settings())
    renderer = resolve_renderer(cfg.renderer, device)
    classes = store.classes
    scale = store.value_scale
    # ---- the recipe: the model's own, scaled by the preset, overridden by options (train/recipes.py)
    options, train_rows = {k: getattr(cfg, k) for k in FIELDS}, select_clips(store, cfg.train_where)
    pretrained = cfg.init_from is not None
    recipe = resolve(
        cfg.model, cfg.preset, options, batch_size=cfg.batch_size, store_size=store.view_size, pretrained=pretrained,
        train_clips=len(train_rows),
    )  # fmt: skip
    cfg = replace(cfg, **recipe.values)  # every recipe field resolved from here on (and saved so)
    cfg.check()
    input_size = cfg.input_size
    train_set, val_set, val_rows, train_sampler, train_loader, val_loader = load_data(
        store, train_rows, cfg, device, renderer, rank, world
    )
    to_input = store.train_input(
        device=device, scale=scale, input_size=cfg.train_size, augment=cfg.augment, renderer=renderer
    )

    # ---- resume: only from a run with the same settings and fewer epochs; never replace a run unasked
    data_id, code = store.identity(), code_digest()
    ckpt = starting_checkpoint(out / "last.pt", cfg, data_id, log, code)
    if main:
        log(recipe.line())
        if ckpt is None:
            clear_run(out)
        plots.mkdir(parents=True, exist_ok=True)

    # ---- model
    model, init_record = _model(
        cfg, ckpt, out / "last.pt", len(store.channels), len(classes), log if main else None,
        store.model_options(),
    )  # fmt: skip
    model_config = config_dict(model.config)  # a built-in layout's graph model saves no layout_def
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

    # ---- resume: the optimizer, schedule and RNG states of the checkpoint, its history and best metric
    start_epoch, best, history = resume_state(ckpt, optimizer, scheduler, factors, steps_per_epoch, cfg, log)
    if main:
        log(
            f"{cfg.model} ({cfg.preset}, {count_parameters(model) / 1e6:.2f}M params) on {device}"
            f"{f' x{world}' if world > 1 else ''}: {len(train_set)} train / {len(val_set)} val clips, "
            f"{len(store.channels)} channels, {cfg.clip_len} frames, {f'{input_size} px, ' if recipe.pixels else ''}"
            f"from {cfg.source}"
            f"{', bf16 autocast' if cfg.bf16(device.type) else ''}{store.describe(renderer)}"
        )

    run = {  # what every checkpoint of this run carries besides the epoch's own state
        "model_name": cfg.model,
        "model_config": model_config,
        "fit_config": saved_fit_config(cfg, store),
        "classes": classes,
        **store.checkpoint_record(input_size, cfg.clip_len),  # "render" (heatmaps) | "coordinates"
        "source": store.name,
        "data": data_id,
        "init_from": init_record,
        "recipe": recipe.as_dict(),  # where each resolved value came from; fit_config holds the values
    }
    step = TrainStep(
        train_model, model, optimizer, scheduler, train_loader, to_input, cfg, device, rank, world
    )
    for epoch in range(start_epoch, cfg.epochs):
        advance = (
            progress(f"epoch {epoch + 1}/{cfg.epochs}", len(train_sampler)) if progress and main else None
        )
        train_sampler.set_epoch(epoch)
        row = {"epoch": epoch + 1} | train_one_epoch(step, epoch, advance)
        if main:  # validate on rank 0, log, checkpoint, plot
            val_row, m = validate(
                model, val_loader, device, scale, input_size, classes, cfg.bf16(device.type),
                to_input=store.eval_input(device, scale, input_size),
            )  # fmt: skip
            row |= val_row
            timing = {"epoch": row["epoch"]} | {k: row.pop(k) for k in TIMING}
            history.append(row)
            is_best = m["mean_class_acc"] > best
            best = max(best, m["mean_class_acc"])
            log(_epoch_line(row | timing, cfg.epochs, is_best, cuda))
            write_timing(out, timing | {"code_sha256": code})
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
        result = final_metrics(out, history, cfg) | final_timing(out)
        if model.has_attention and history:
            picks, weights = attention_of_views(model, val_set, device, scale, input_size)
            names = [f"{val_rows['clip_id'].iat[i]} ({val_rows['label_name'].iat[i]})" for i in picks]
            plot_attention(weights, names, plots / "attention.png")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return result


def _set_up(cfg: FitConfig) -> tuple[int, int, torch.device]:
    """Device, distributed rank and world size, determinism: (rank, world, device)."""
    rank, world = init_distributed()
    device = pick_device(cfg.device, rank)
    torch.manual_seed(derived_seed(cfg.seed, "init"))
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return rank, world, device


def load_data(store, train_rows, cfg: FitConfig, device: torch.device, renderer: str, rank: int, world: int):
    """The datasets and loaders of the --train-where rows and of the clips --val-where selects (pandas queries on
    the clip table): (train_set, val_set, val_rows, train_sampler, train_loader, val_loader)."""
    val_rows = select_clips(store, cfg.val_where)
    train_set = store.dataset(
        train_rows,
        clip_len=cfg.clip_len,
        train=True,
        seed=cfg.seed,
        input_size=cfg.train_size,
        augment=cfg.augment,
        renderer=renderer,
    )
    val_set = store.dataset(val_rows, clip_len=cfg.clip_len, train=False, num_clips=1)
    train_sampler = EpochSampler(len(train_set), shuffle=True, seed=cfg.seed, rank=rank, world_size=world)
    loaders = {"batch_size": cfg.batch_size, "workers": cfg.workers, "device": device, "seed": cfg.seed}
    collate = getattr(train_set, "collate", None)
    train_loader = make_loader(train_set, train_sampler, **loaders, collate_fn=collate)
    val_loader = make_loader(val_set, EpochSampler(len(val_set), shuffle=False, pad=False), **loaders)
    return train_set, val_set, val_rows, train_sampler, train_loader, val_loader


def saved_fit_config(cfg: FitConfig, store) -> dict:
    """The settings a checkpoint records: every field, less the coordinate source's fields where the source
    does not read them (so a heatmap run's checkpoint is what it was before graph models)."""
    saved = asdict(cfg)
    for name in COORDINATE_FIELDS:
        if name not in store.fit_fields:
            del saved[name]
    return saved


def _model(
    cfg: FitConfig, ckpt: dict | None, path: Path, n_channels: int, n_classes: int, log, options: dict
):
    """(model, init record): the checkpoint's model when resuming, else a new one (`options`: the config fields
    the store decides), with --init-from's weights where given (its record, with the source's sha256, travels
    with every checkpoint of the run)."""
    if ckpt is not None:
        return model_from_checkpoint(ckpt, path), ckpt.get("init_from")
    model, _ = build_model(cfg.model, cfg.preset, n_channels, n_classes, dropout=cfg.dropout, **options)
    if not cfg.init_from:
        return model, None
    report = init_from(model, cfg.model, cfg.init_from)
    for line in report.lines() if log else ():  # rank 0 only
        log(line)
    return model, report.as_dict()


def train_one_epoch(step: TrainStep, epoch: int, advance=None) -> dict:
    """One pass over the epoch's clips; returns the epoch's training metrics (means over all ranks)."""
    cfg, device, model, optimizer = step.cfg, step.device, step.model, step.optimizer
    t0 = time.perf_counter()
    torch.manual_seed(
        derived_seed(cfg.seed, "model", epoch)
    )  # dropout: a function of the epoch (exact resume)
    aug_gen = torch_generator(cfg.seed, "augment", epoch, step.rank)
    step.train_model.train()
    freeze_backbone_statistics(model, epoch, cfg.freeze_backbone_epochs)
    cuda, bf16 = device.type == "cuda", cfg.bf16(device.type)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    loss_sum, correct, seen = 0.0, 0, 0
    lr = optimizer.param_groups[-1]["lr"]
    batches = TimedLoader(step.loader)  # measures the time the step waits for the loader
    for views, labels in batches:
        x = step.to_input(views, aug_gen)  # (B, C, T, S, S) float, augmented as --source says
        x = x.contiguous(
            memory_format=model.input_memory_format
        )  # heatmaps: channels innermost, as the weights
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = step.train_model(x)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        lr = optimizer.param_groups[-1]["lr"]  # the head's (the only group unless fine-tuning)
        step.scheduler.step()
        loss_sum += loss.item() * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        if advance:
            advance(len(labels), loss=loss_sum / seen)
    seconds = time.perf_counter() - t0
    train_loss, train_top1 = mean_over_ranks((loss_sum, correct, seen), device, step.world)
    return {
        "train_loss": train_loss,
        "train_top1": train_top1,
        "lr": lr,
        "epoch_s": seconds,
        "train_clips_per_s": seen * step.world / seconds,
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
