"""Checkpoints: everything a run needs to resume or to predict, saved atomically, loaded with weights_only=True.

Contents: model name + its config (a plain dict) + weights, optimizer, scheduler, epoch, best metric, the fit
config, RNG states, the class names and the render settings of the store it was trained on (so `predict` can
render new poses exactly like the training data).

A checkpoint is input like any other file: `load_model` checks every field it uses (types, sane bounds, that the
render settings describe a heatmap we can afford to draw, that the weights fit the model config) BEFORE building
anything, and every failure is one ActrecError line naming the file and what is wrong. fit --resume, evaluate,
predict, export and fit --init-from all come through here.
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from etl.common.errors import ActrecError
from etl.heatmaps.spec import DTYPES, SIZE_RANGE, RenderSpec
from etl.stores.storeio import disk_full_error, is_disk_full

_RENDER = RenderSpec()  # a converted checkpoint's render settings default to `actrec-etl render`'s

# What every model checkpoint (trained or converted) holds; a training checkpoint also has RESUME_KEYS.
# A graph model's checkpoint has "coordinates" (what its coordinate source needs) in place of "render".
MODEL_KEYS = ("model_name", "model_config", "model", "classes", "render", "fit_config")
COORDINATE_KEYS = ("layout", "stream", "coords", "clip_len", "channels")
RESUME_KEYS = ("optimizer", "scheduler", "epoch", "best_metric", "rng", "history")
RENDER_KEYS = RenderSpec.checkpoint_keys()  # the "render" dict: RenderSpec.to_checkpoint
MAX_CLIP_LEN = 1024  # frames per view
MAX_CLASSES = 100_000
# Upper bounds for model config fields (a checkpoint could otherwise ask for a model of any size); generous
# against the `full` presets (base 32, width 64, LSTM 1024, blocks up to 36).
_INT_BOUNDS = {
    "in_channels": 1024,
    "num_classes": MAX_CLASSES,
    "base_channels": 512,
    "stage_blocks": 64,
    "inflate": 1,
    "spatial_strides": 4,
    "temporal_strides": 4,
    "conv1_stride": 4,
    "pool1_stride": 4,
    "resnet_depth": 152,
    "resnet_width": 512,
    "stem_stride": 2,
    "lstm_hidden": 8192,
    "lstm_layers": 8,
    "head_dims": 16384,
    "attn_dim": 8192,
    "frame_chunk": 1 << 20,
}
_MAX_STAGES = 8


def save_checkpoint(path: Path, state: dict) -> None:
    # Write then rename: a run killed mid-save leaves the previous checkpoint intact. Through a Python file:
    # a full disk then raises OSError(ENOSPC) (torch's own writer reports only "unexpected pos").
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, Exception) and is_disk_full(exc):
            raise disk_full_error(path, f"{path.name} was not updated (the previous one is intact)") from None
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint's top-level dict, loaded with weights_only=True; ActrecError (one line) if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ActrecError(f"checkpoint {path} not found")
    if path.stat().st_size == 0:
        raise ActrecError(f"cannot load checkpoint {path}: the file is empty")
    with path.open("rb") as fh:
        head = fh.read(4)
    # torch.save writes a zip archive; files of torch < 1.6 are a bare pickle (protocol byte 0x80)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise ActrecError(
            f"cannot load checkpoint {path}: not a PyTorch file (expected a .pt checkpoint written by "
            f"`actrec-train fit` or `convert`, a zip archive){_looks_like(path)}"
        )
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ActrecError(f"cannot load checkpoint {path}: {_refusal(exc)}") from None
    except (EOFError, zipfile.BadZipFile) as exc:
        raise ActrecError(f"cannot load checkpoint {path}: truncated or not a PyTorch file ({exc})") from None
    except Exception as exc:  # torch raises many types on corrupt files (IndexError, RuntimeError, ...)
        reason = _first_line(exc) or type(exc).__name__
        raise ActrecError(
            f"cannot load checkpoint {path}: not a PyTorch file or corrupt ({reason})"
        ) from None
    if not isinstance(obj, dict):
        raise ActrecError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a dict of weights and settings"
        )
    return obj


def _looks_like(path: Path) -> str:
    """'; it is text starting "epoch,train_loss"' for a text file (a metrics.csv passed by mistake), else ''."""
    with path.open("rb") as fh:
        head = fh.read(200)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    first = text.splitlines()[0][:40] if text.strip() else ""
    return f"; it is text starting {first!r}" if first else ""


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _refusal(exc: pickle.UnpicklingError) -> str:
    """torch's weights_only refusal, minus its advice to retry with weights_only=False (never do that)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    for line in lines:
        if "unsupported GLOBAL" in line or "Unsupported global" in line:
            return (
                f"it holds objects that safe loading refuses ({line.rstrip('.')}); actrec loads weights only"
            )
    for line in lines:
        if "Unsupported operand" in line:  # bytes that are no pickle opcode: not a checkpoint at all
            return f"safe loading refuses it: a plain pickle, corrupt, or not a PyTorch file ({line.rstrip('.')})"
    if "Weights only load failed" in str(exc):
        return "it holds objects that safe loading refuses; actrec loads weights only"
    return f"not a PyTorch file or corrupt ({_first_line(exc) or 'unpickling failed'})"


# ------------------------------------------------------------------------------------------- validation


@dataclass
class LoadedModel:
    """A checked checkpoint and the model built from it (eval mode, on the requested device)."""

    model: nn.Module
    model_name: str
    classes: list[str]
    render: dict  # {} for a graph model
    clip_len: int
    epoch: int  # 1-based epochs trained; 0 for a converted checkpoint
    checkpoint: dict
    path: str


def load_model(path: str | Path, device: str | torch.device = "cpu", *, resume: bool = False) -> LoadedModel:
    """Load, check and build: the one way every command turns a checkpoint file into a model."""
    ckpt = load_checkpoint(path, map_location="cpu")
    check_checkpoint(ckpt, path, resume=resume)
    model = model_from_checkpoint(ckpt, path)
    model.to(device).eval()
    return LoadedModel(
        model=model,
        model_name=ckpt["model_name"],
        classes=list(ckpt["classes"]),
        render=dict(ckpt.get("render", {})),
        clip_len=int(ckpt["fit_config"]["clip_len"]),
        epoch=ckpt["epoch"] + 1 if _is_int(ckpt.get("epoch")) else 0,
        checkpoint=ckpt,
        path=str(path),
    )


def check_checkpoint(ckpt: Any, path: str | Path, *, resume: bool = False) -> None:
    """Every field load_model and the commands use: present, of the right type, within sane bounds."""
    from train.models import MODELS

    where = f"checkpoint {path}"
    if not isinstance(ckpt, dict):
        raise ActrecError(f"{where} holds a {type(ckpt).__name__}, not a dict of weights and settings")
    inputs = "coordinates" if "coordinates" in ckpt else "render"
    required = tuple(k if k != "render" else inputs for k in MODEL_KEYS) + (RESUME_KEYS if resume else ())
    missing = [k for k in required if k not in ckpt]
    if missing:
        hint = (
            " (a raw MMAction2/PYSKL file? run `actrec-train convert` first)" if "state_dict" in ckpt else ""
        )
        raise ActrecError(f"{where} lacks {', '.join(missing)}: not an actrec checkpoint{hint}")
    name = ckpt["model_name"]
    if not isinstance(name, str) or name not in MODELS:
        raise ActrecError(f"{where}: unknown model {_short(name)}; expected one of {', '.join(MODELS)}")
    config = ckpt["model_config"]
    if not isinstance(config, dict):
        raise ActrecError(f"{where}: model_config is a {type(config).__name__}, not a dict")
    _check_model_config(MODELS[name][1], config, where)
    classes = ckpt["classes"]
    if not isinstance(classes, list | tuple) or not all(isinstance(c, str) for c in classes):
        raise ActrecError(f"{where}: classes must be a list of names")
    if len(classes) != config["num_classes"]:
        raise ActrecError(
            f"{where}: {len(classes)} class names for a model with num_classes={config['num_classes']}"
        )
    if inputs == "render":
        _check_render(ckpt["render"], config["in_channels"], where)
    else:
        _check_coordinates(ckpt["coordinates"], config, where)
    fit_cfg = ckpt["fit_config"]
    clip_len = fit_cfg.get("clip_len") if isinstance(fit_cfg, dict) else None
    if not _is_int(clip_len) or not 1 <= clip_len <= MAX_CLIP_LEN:
        raise ActrecError(f"{where}: fit_config.clip_len must be an integer in 1..{MAX_CLIP_LEN}")
    state = ckpt["model"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ActrecError(f"{where}: 'model' must map parameter names to tensors")
    if resume:
        if not _is_int(ckpt["epoch"]) or not isinstance(ckpt["history"], list):
            raise ActrecError(f"{where}: epoch must be an integer and history a list")
        for key in ("optimizer", "scheduler", "rng"):
            if not isinstance(ckpt[key], dict):
                raise ActrecError(f"{where}: {key} must be a dict")


def model_from_checkpoint(ckpt: dict, path: str | Path) -> nn.Module:
    """Build the model of a checked checkpoint and load its weights (strict, shapes compared first)."""
    from train.models import model_from_config

    where = f"checkpoint {path}"
    # The config is within bounds, but compare with the weights on the meta device before allocating: the
    # model is then never larger than the tensors the file already held.
    try:
        with torch.device("meta"):
            skeleton = model_from_config(ckpt["model_name"], ckpt["model_config"])
    except ActrecError as exc:
        raise ActrecError(f"{where}: {exc}") from None
    check_state_dict(ckpt["model"], skeleton.state_dict(), where)
    model = model_from_config(ckpt["model_name"], ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    return model


def check_state_dict(state: dict, expected: dict, where: str) -> None:
    """Same keys, same shapes; otherwise one line naming (the first few of) the offending keys."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing weights ({_few(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected weights ({_few(unexpected)})")
    if wrong:
        problems.append(f"{len(wrong)} with the wrong shape (file vs model: {_few(wrong)})")
    if problems:
        raise ActrecError(f"{where}: the weights do not fit the model config: {'; '.join(problems)}")


def _few(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[:n] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _check_model_config(config_cls: type, config: dict, where: str) -> None:
    """Types and bounds of each field, from the dataclass's defaults (so a new field is checked too)."""
    valid = {f.name: f for f in fields(config_cls)}
    unknown = sorted(str(k) for k in config if k not in valid)
    if unknown:
        raise ActrecError(f"{where}: unknown {config_cls.__name__} field(s) {_few(unknown)}")
    for key in ("in_channels", "num_classes"):
        if key not in config:
            raise ActrecError(f"{where}: model_config lacks {key}")
    for key, value in config.items():
        f = valid[key]
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        bad = f"{where}: model_config.{key} = {_short(value)} is not "
        if kind.startswith("tuple"):
            if not isinstance(value, list | tuple) or not 1 <= len(value) <= _MAX_STAGES:
                raise ActrecError(bad + f"a list of 1..{_MAX_STAGES} integers")
            items = value
        elif kind == "str":  # a name (a graph model's layout): its config checks the value
            if not isinstance(value, str) or not 0 < len(value) <= 64:
                raise ActrecError(bad + "a name of 1..64 characters")
            continue
        elif kind.startswith("dict"):  # a custom layout's definition: its config checks the contents
            if value is not None and not isinstance(value, dict):
                raise ActrecError(bad + "a layout definition (a dict)")
            continue
        elif kind == "bool":
            if not isinstance(value, bool):
                raise ActrecError(bad + "true or false")
            continue
        elif kind == "float":
            if not _is_number(value) or not 0 <= value < 1:
                raise ActrecError(bad + "a number in [0, 1)")
            continue
        else:
            items = [value]
        bound = _INT_BOUNDS.get(key, 4096)
        lowest = 0 if key in ("inflate", "frame_chunk") else 1
        if not all(_is_int(v) and lowest <= v <= bound for v in items):
            raise ActrecError(bad + f"{'made of ' if len(items) > 1 else ''}integers in {lowest}..{bound}")


def _check_coordinates(record: Any, config: dict, where: str) -> None:
    """What the coordinate source reads a store with: the model's layout, a known stream and coordinates."""
    from train.config import COORDS, STREAMS

    if not isinstance(record, dict) or any(k not in record for k in COORDINATE_KEYS):
        raise ActrecError(f"{where}: coordinates settings must be a dict of {', '.join(COORDINATE_KEYS)}")
    if record["layout"] != config.get("layout") or record.get("layout_def") != config.get("layout_def"):
        raise ActrecError(f"{where}: coordinates layout {_short(record['layout'])} is not the model's")
    if record["stream"] not in STREAMS or record["coords"] not in COORDS:
        raise ActrecError(
            f"{where}: coordinates stream/coords {_short(record['stream'])}/"
            f"{_short(record['coords'])} are not one of {STREAMS} / {COORDS}"
        )
    if len(record["channels"]) != config["in_channels"]:
        raise ActrecError(
            f"{where}: {len(record['channels'])} coordinate channels for a model of "
            f"in_channels={config['in_channels']}"
        )


def _check_render(render: Any, in_channels: int, where: str) -> None:
    """The settings predict renders new poses with: a known layout and preset, sizes we can afford."""
    from etl.pose.layout_def import stored_layout
    from etl.pose.skeleton import CHANNEL_PRESETS, LAYOUTS

    if not isinstance(render, dict):
        raise ActrecError(f"{where}: render settings are a {type(render).__name__}, not a dict")
    missing = [k for k in RENDER_KEYS if k not in render]
    if missing:
        raise ActrecError(f"{where}: render settings lack {', '.join(missing)}")
    layout, preset = render["layout"], render["channel_preset"]
    if not isinstance(layout, str) or (layout not in LAYOUTS and "layout_def" not in render):
        raise ActrecError(f"{where}: unknown layout {_short(layout)}; known: {', '.join(LAYOUTS)}")
    if not isinstance(preset, str) or preset not in CHANNEL_PRESETS:
        raise ActrecError(f"{where}: unknown channel preset {_short(preset)}")
    names = stored_layout(render, where).channel_names(preset)
    channels = render["channels"]
    if not isinstance(channels, list | tuple) or list(channels) != names:
        raise ActrecError(f"{where}: render channels are not the {layout} {preset} channels")
    if len(names) != in_channels:
        raise ActrecError(f"{where}: {layout} {preset} has {len(names)} channels, the model {in_channels}")
    perm = render["flip_permutation"]
    if (
        not isinstance(perm, list | tuple)
        or not all(map(_is_int, perm))
        or sorted(perm) != list(range(len(names)))
    ):
        raise ActrecError(f"{where}: flip_permutation is not a permutation of the {len(names)} channels")
    lo, hi = SIZE_RANGE
    for key in ("size", "input_size"):
        if not _is_int(render[key]) or not lo <= render[key] <= hi:
            raise ActrecError(
                f"{where}: render {key} = {_short(render[key])} is not an integer in {lo}..{hi}"
            )
    checks = {
        "sigma": (0.0, 100.0),
        "padding": (0.0, 10.0),
        "eps": (0.0, 1.0),
    }
    for key, (low, high) in checks.items():
        value = render[key]
        if not _is_number(value) or not low <= value <= high or (key == "sigma" and value <= 0):
            interval = f"({low}, {high}]" if key == "sigma" else f"[{low}, {high}]"
            raise ActrecError(f"{where}: render {key} = {_short(value)} is not a number in {interval}")
    if not isinstance(render["dtype"], str) or render["dtype"] not in DTYPES:
        raise ActrecError(
            f"{where}: render dtype {_short(render['dtype'])} is not one of {', '.join(DTYPES)}"
        )


def rng_states() -> dict:
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def render_settings(
    layout: str,
    channel_preset: str,
    *,
    size: int,
    sigma: float,
    input_size: int | None = None,
    padding: float = _RENDER.padding,
    eps: float = _RENDER.eps,
    dtype: str = _RENDER.dtype,
) -> dict:
    """Render settings for a checkpoint that did not come from one of our stores (a converted one)."""
    from etl.pose.skeleton import get_layout

    spec = RenderSpec(
        channels=channel_preset,
        size=int(size),
        sigma=float(sigma),
        padding=float(padding),
        eps=float(eps),
        dtype=dtype,
    )
    return spec.to_checkpoint(get_layout(layout), int(input_size or size))
