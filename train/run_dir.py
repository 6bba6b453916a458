"""The rules of a run folder (`fit --out`): which run may be resumed, what --overwrite removes, the lock, the
timing.csv of wall-clock figures and code digests, and the summaries metrics.json / timing.json.

Wall-clock measurements go to timing.csv / timing.json only: checkpoints, metrics.csv and metrics.json hold what
the run computed, byte for byte the same on a rerun, so the DVC lock of a demo does not change with the machine's
load (a fresh `make demo` leaves `git status` clean).
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd

import etl
from etl.common.errors import ActrecError
from etl.common.locks import exclusive_lock
from train.checkpoint import check_checkpoint, load_checkpoint, restore_rng_states
from train.config import COORDINATE_FIELDS, FitConfig
from train.recipes import SGD_ONLY

# Fields that may differ between a run and its resumption (they do not change what is learned).
RESUME_FREE = {"epochs", "resume", "overwrite", "workers", "device", "out", "store"}  # store: by content
# What a run folder holds; --overwrite removes these before training from scratch (no stale plots or best.pt).
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "metrics.json", "timing.csv", "timing.json")
TIMING = ("epoch_s", "train_clips_per_s", "data_wait_share", "peak_gpu_mem_gb")  # timing.csv's columns
RUN_PLOTS = ("curves.png", "confusion.png", "attention.png")
PACKAGES = (Path(etl.__file__).resolve().parent, Path(__file__).resolve().parent)  # etl/, train/


def run_lock(out: Path, main_rank: bool) -> AbstractContextManager:
    """Two fits never write one --out: rank 0 holds the folder's lock for the whole run."""
    return exclusive_lock(out, "fit") if main_rank else nullcontext()


def starting_checkpoint(path: Path, cfg: FitConfig, data_id: dict, log, code: str) -> dict | None:
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
    optional = set(COORDINATE_FIELDS)  # recorded only by the source that reads them (train/fit.py)
    if "recipe" not in ckpt or any(f.name not in saved and f.name not in optional for f in fields(FitConfig)):
        # before per-model recipes (a per-epoch schedule) or before one of today's options: not translated
        reason = "it was saved by an older actrec and cannot be continued by this one"
    else:
        reason = _resume_refusal(ckpt, cfg, data_id, path, log, code)
        if reason is None:
            note = schedule_change_note(done, int(saved["epochs"]), cfg)
            if note:
                log(note)
            return ckpt
    if not cfg.overwrite:
        raise ActrecError(
            f"cannot resume {path}: {reason}; pass --overwrite to train from scratch into {path.parent}, or "
            "another --out"
        )
    log(f"--resume: not continuing {path}: {reason}; --overwrite: training from scratch")
    return None


def schedule_change_note(done: int, saved_epochs: int, cfg: FitConfig) -> str | None:
    """One line when a resume changes the total of a cosine schedule (the only one that depends on it): the
    remaining epochs follow a curve for the new total, so the result is not that of an uninterrupted run."""
    if saved_epochs == cfg.epochs or cfg.schedule != "cosine":
        return None
    if done >= cfg.epochs:  # nothing left to train: its epochs followed the saved total's curve
        return (
            f"note: {cfg.epochs} epochs (--epochs or the preset's), but this run was started with {saved_epochs}: its {done} "
            f"epochs followed a cosine schedule for {saved_epochs}, so it differs from an uninterrupted "
            f"{cfg.epochs}-epoch run"
        )
    return (
        f"note: {cfg.epochs} epochs (--epochs or the preset's), but this run was started with {saved_epochs}: the cosine "
        f"schedule is recomputed for {cfg.epochs} epochs from epoch {done + 1} on, so the result differs "
        f"from an uninterrupted {cfg.epochs}-epoch run (--overwrite trains one)"
    )


def _resume_refusal(ckpt: dict, cfg: FitConfig, data_id: dict, path: Path, log, code: str) -> str | None:
    """Why `ckpt` (a checkpoint of this actrec) cannot be continued with `cfg`, or None when it can."""
    done = int(ckpt["epoch"]) + 1
    # Resolved values against resolved values: `--lr 0.0125` resumes a run whose recipe gave 0.0125.
    saved = ckpt["fit_config"]
    free = RESUME_FREE | (set(SGD_ONLY) if cfg.optimizer == saved["optimizer"] == "adamw" else set())
    changed = sorted(k for k, v in asdict(cfg).items() if k not in free and saved.get(k, v) != v)
    if ckpt.get("data") != data_id:
        changed.append("the heatmap store's contents or its clip table (labels, splits)")
    if ckpt["model_name"] != cfg.model and "model" not in changed:
        changed.append("model")
    if changed:
        return f"it was trained with different settings ({', '.join(changed)})"
    if done > cfg.epochs:
        return (
            f"it has {done} epochs, more than the {cfg.epochs} asked (its schedule was for {saved['epochs']})"
        )
    trained_with = _trained_with(path.parent / "timing.csv")  # a damaged file stops here, before any training
    if trained_with in (None, code):
        return None
    if done < cfg.epochs or not cfg.overwrite:
        log(
            f"note: {path} was trained with other actrec code (etl/, train/ sources); "
            + (
                "continuing it with this code"
                if done < cfg.epochs
                else "--overwrite retrains it with this code"
            )
        )
        return None
    # A finished run, rerun on purpose (as `dvc repro` does after a code change): its results must come from
    # this code, not stand unchanged under it.
    return "it is finished and was trained with other actrec code (etl/, train/ sources)"


def resume_state(
    ckpt: dict | None, optimizer, scheduler, factors, steps_per_epoch: int, cfg: FitConfig, log
) -> tuple[int, float, list]:
    """Restore the optimizer, schedule and RNG states of `ckpt` (None: a new run); returns (first epoch to
    train, best metric so far, history rows of the epochs done)."""
    if ckpt is None:
        return 0, -1.0, []
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
    last = Path(cfg.out) / "last.pt"
    if start_epoch < cfg.epochs:
        log(f"resuming {last} at epoch {start_epoch + 1}/{cfg.epochs} (best {best:.3f})")
    else:
        log(f"{last} has trained all {cfg.epochs} epochs already: nothing to train")
    return start_epoch, best, list(ckpt["history"])  # history: rows of epochs 1..start_epoch (1-based)


def clear_run(out: Path) -> None:
    """Before training from scratch: remove what an earlier run left (its checkpoints, metrics and plots)."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in RUN_PLOTS:
        (out / "plots" / name).unlink(missing_ok=True)


def code_digest(packages: tuple[Path, ...] = PACKAGES) -> str:
    """sha256 of the etl and train packages' Python sources: the code a run's epochs were trained with."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            digest.update(f"{package.name}/{path.relative_to(package)}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def write_timing(out: Path, timing: dict) -> None:
    """timing.csv: one row per epoch; a resumed run replaces the rows from the epoch it redoes on."""
    path = out / "timing.csv"
    rows = _read_timing(path) if path.exists() else pd.DataFrame(columns=["epoch", *TIMING])
    rows = rows[rows.epoch < timing["epoch"]]
    tmp = path.with_name(path.name + ".tmp")  # replaced in one step: an interrupted write leaves the old file
    pd.concat([rows, pd.DataFrame([timing])], ignore_index=True).to_csv(tmp, index=False)
    os.replace(tmp, path)


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


def final_metrics(out: Path, history: list[dict], cfg: FitConfig) -> dict:
    """metrics.json: the best epoch's (by mean class accuracy) validation figures and the last epoch's."""
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


def final_timing(out: Path) -> dict:
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
