"""Each model's own training recipe, how a preset scales it for a smaller machine, and how options override it.

A recipe is what the model's authors train it with; `fit` starts from it, lets `--preset` shrink the costly parts
(epochs, frames, pixels) and lets every option override any single value. `resolve()` returns the values and,
for each one, where it came from (recipe / preset / option): fit prints that line and the checkpoint records it.

- `c3d`: PoseC3D (PYSKL `slowonly_r50` keypoint configs): SGD, momentum 0.9, nesterov, lr 0.2 per 128 clips
  (scaled linearly with the batch size), weight decay 3e-4, cosine per iteration, gradient clip 40, dropout 0.5,
  48 frames, random crops resized to 56 px for training and 64 px for testing (train = 0.875 x test).
- `stgcnpp`, `ctrgcn`: PYSKL's GCN recipe (ST-GCN++ / CTR-GCN NTU configs): SGD, momentum 0.9, nesterov, lr 0.1
  per 128 clips (scaled linearly with the batch size), weight decay 5e-4, cosine per iteration, 80 epochs (16
  over the training set repeated 5 times), 100 frames, no dropout, no gradient clip; no pixels (input size 0).
- `cnn_lstm`, `cnn_lstm_attn` from a pretrained encoder (`--init-from`): the seed's recipe, AdamW lr 1e-5 for 80
  epochs, cross-entropy.
- `cnn_lstm`, `cnn_lstm_attn` from scratch: the seed's 1e-5 does not move randomly initialised weights in any
  useful number of epochs (val top-1 stays at chance); AdamW lr 1e-3 with one warm-up epoch, cosine, label
  smoothing 0.1 and gradient clip 5 learns (measured: docs/results.md, tests/test_recipes.py).

The published recipes are made for hundreds of GPU epochs at large batches. `--preset small` and `tiny` (a CPU's
budget: tens of epochs) train every model from scratch with `CPU_RECIPE` instead: AdamW lr 1e-3, weight decay 0.01,
one warm-up epoch, cosine, label smoothing 0.1, 15 epochs of 24 frames (small; more epochs for a training set under
1,067 clips, so that every run sees at least 16,000 samples). It was chosen by measurement: on
Penn Action c3d `small` with PoseC3D's recipe reached 67.4% after 12 epochs against 84.1% with this one, and the
graph networks compare the same way (docs/results.md, "Defaults"). What a model's recipe says beyond optimisation
(gradient clip, dropout, crop scale) is kept; fine-tuning (`--init-from`) keeps its own recipe at every preset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from etl.common.errors import ActrecError
from train.config import OPTIMIZERS


@dataclass(frozen=True)
class Recipe:
    name: str  # shown in fit's recipe line and recorded in the checkpoint
    optimizer: str  # adamw | sgd
    lr: float  # at `lr_batch` clips per step; fit scales it linearly to --batch-size (lr_batch 0: as given)
    lr_batch: int
    weight_decay: float
    epochs: int
    clip_len: int  # frames sampled per clip
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    schedule: str = "cosine"  # cosine | step | constant, per iteration after warm-up
    warmup_epochs: int = 0  # linear warm-up, per iteration
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    dropout: float = 0.5
    input_size: int = 0  # test (model) input size in px; 0 = the store's
    train_scale: float = 1.0  # training crops are resized to train_scale x input_size
    pixels: bool = True  # False: the model reads coordinates, so input/train sizes mean nothing (not printed)


POSEC3D = Recipe(
    name="PoseC3D",
    optimizer="sgd",
    lr=0.2,
    lr_batch=128,
    momentum=0.9,
    nesterov=True,
    weight_decay=3e-4,
    epochs=240,  # PYSKL: 24 epochs over the training set repeated 10 times
    clip_len=48,
    grad_clip=40.0,
    dropout=0.5,
    input_size=64,
    train_scale=56 / 64,
)
PYSKL_GCN = Recipe(
    name="PYSKL GCN",
    optimizer="sgd",
    lr=0.1,
    lr_batch=128,
    momentum=0.9,
    nesterov=True,
    weight_decay=5e-4,
    epochs=80,
    clip_len=100,
    dropout=0.0,
    pixels=False,
)
SEED_FINETUNE = Recipe(
    name="seed (pretrained encoder)", optimizer="adamw", lr=1e-5, lr_batch=0, weight_decay=0.01, epochs=80,
    clip_len=32,
)  # fmt: skip
LSTM_SCRATCH = Recipe(
    name="from scratch",
    optimizer="adamw",
    lr=1e-3,
    lr_batch=0,
    weight_decay=0.01,
    epochs=80,
    clip_len=32,
    warmup_epochs=1,
    label_smoothing=0.1,
    grad_clip=5.0,
)
# model name (train.models.MODELS) -> its recipe from scratch, and with --init-from (pretrained weights)
RECIPES: dict[str, Recipe] = {
    "c3d": POSEC3D,
    "cnn_lstm": LSTM_SCRATCH,
    "cnn_lstm_attn": LSTM_SCRATCH,
    "stgcnpp": PYSKL_GCN,
    "ctrgcn": PYSKL_GCN,
}
FINETUNE_RECIPES: dict[str, Recipe] = {
    "c3d": POSEC3D,
    "cnn_lstm": SEED_FINETUNE,
    "cnn_lstm_attn": SEED_FINETUNE,
    "stgcnpp": PYSKL_GCN,
    "ctrgcn": PYSKL_GCN,
}


# What `small` and `tiny` train with from scratch in place of the published recipe's optimisation and budget
# (module docstring; measured in docs/results.md "Defaults"). Keys are Recipe fields.
CPU_RECIPE: dict[str, Any] = {
    "optimizer": "adamw",
    "lr": 1e-3,
    "lr_batch": 0,  # as given, whatever the batch size
    "weight_decay": 0.01,
    "schedule": "cosine",
    "warmup_epochs": 1,
    "label_smoothing": 0.1,
    "epochs": 15,
    "clip_len": 24,
}


@dataclass(frozen=True)
class PresetScale:
    """What a preset changes: a smaller machine trains fewer epochs on fewer frames of fewer pixels, and (small,
    tiny) with the CPU recipe that learns within those few epochs."""

    max_epochs: int | None
    max_clip_len: int | None
    max_input_size: int | None  # test size; the train size follows by the recipe's train_scale
    cpu_recipe: bool = False  # from scratch: CPU_RECIPE's values replace the recipe's
    # CPU_RECIPE's epochs raised until they show at least this many training samples: a small data set gets more
    # epochs, 1,000 steps of 16 at least (UTD-MHAD's 431 clips x 15 epochs = 405 steps left c3d at 9.5% and
    # ST-GCN++ at 55% test top-1, both under-fitting: docs/results.md; Penn Action's 1258 x 15 = 1,180 steps is
    # above it and keeps 15)
    min_samples: int | None = None


PRESET_SCALES: dict[str, PresetScale] = {
    "full": PresetScale(None, None, None),
    "small": PresetScale(
        None, None, 48, cpu_recipe=True, min_samples=16_000
    ),  # a 2-core CPU: ~1k clips/epoch
    "tiny": PresetScale(2, 8, 32, cpu_recipe=True),  # tests: seconds per epoch
}

# The resolved settings, in the order fit prints them; each is a FitConfig field (None there = resolve it).
FIELDS = (
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "label_smoothing",
    "grad_clip",
    "dropout",
    "epochs",
    "clip_len",
    "input_size",
    "train_size",
)
SGD_ONLY = ("momentum", "nesterov")


@dataclass
class Resolved:
    """The settings a run trains with and where each came from ("recipe", "preset <name>", "option")."""

    recipe: str  # e.g. "c3d: PoseC3D"
    values: dict[str, Any]
    sources: dict[str, str]
    notes: dict[str, str]  # how a value was derived, e.g. "0.2 per 128 clips x 8"
    pixels: bool = True  # the recipe's: False hides the input sizes from the line

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """One line: `recipe c3d: PoseC3D: sgd, lr 0.0125 (0.2 per 128 clips x 8), ... | preset small: ...`."""
        groups: dict[str, list[str]] = {}
        for key in FIELDS:
            if key in SGD_ONLY and self.values["optimizer"] != "sgd":
                continue
            if key in ("input_size", "train_size") and not self.pixels:
                continue
            groups.setdefault(self.sources[key], []).append(self._show(key))
        parts = [f"{source}: {', '.join(items)}" for source, items in groups.items()]
        return f"recipe {self.recipe} | " + " | ".join(parts)

    def _show(self, key: str) -> str:
        v = self.values[key]
        text = {
            "optimizer": str(v),
            "nesterov": "nesterov" if v else "no nesterov",
            "schedule": f"{v} per iteration",
            "epochs": f"{v} epochs",
            "clip_len": f"{v} frames",
            "input_size": f"{v} px test",
            "train_size": f"{v} px train",
            "warmup_epochs": f"{v} warm-up epoch{'' if v == 1 else 's'}",
        }.get(key, f"{key.replace('_', ' ')} {v:g}" if isinstance(v, float) else f"{key} {v}")
        note = self.notes.get(key)
        return f"{text} ({note})" if note else text


def recipe_for(model: str, pretrained: bool) -> Recipe:
    table = FINETUNE_RECIPES if pretrained else RECIPES
    if model not in table:
        raise ActrecError(f"--model must be one of {', '.join(table)}, not {model!r}")
    return table[model]


def resolve(
    model: str,
    preset: str,
    options: dict[str, Any],
    *,
    batch_size: int,
    store_size: int,
    pretrained: bool,
    train_clips: int = 0,
) -> Resolved:
    """The model's recipe, scaled by `preset`, with every option that is not None on top.

    `options` maps FIELDS to the values the user gave (None = not given); input_size 0 means the store's size;
    `train_clips` (the clips one epoch trains on; 0 = unknown) raises the CPU recipe's epochs to the preset's
    `min_samples`."""
    recipe = recipe_for(model, pretrained)
    if preset not in PRESET_SCALES:
        raise ActrecError(f"--preset must be one of {', '.join(PRESET_SCALES)}, not {preset!r}")
    scale = PRESET_SCALES[preset]
    sources = dict.fromkeys(FIELDS, "recipe")
    if scale.cpu_recipe and not pretrained:
        recipe = replace(recipe, **CPU_RECIPE)
        sources.update(dict.fromkeys((k for k in CPU_RECIPE if k in sources), f"preset {preset}"))
    values: dict[str, Any] = {k: getattr(recipe, k) for k in FIELDS if k not in ("train_size",)}
    notes: dict[str, str] = {}
    if recipe.lr_batch:
        values["lr"] = recipe.lr * batch_size / recipe.lr_batch
        notes["lr"] = f"{recipe.lr:g} per {recipe.lr_batch} clips x {batch_size}"
    values["input_size"] = min(recipe.input_size or store_size, store_size)  # never upsample the store
    if recipe.input_size and recipe.input_size > store_size:
        notes["input_size"] = f"the store's size; {recipe.input_size} px in the recipe"

    def cap(key: str, limit: int | None) -> None:
        if limit is not None and values[key] > limit:
            values[key], sources[key] = limit, f"preset {preset}"

    if scale.min_samples and train_clips and sources["epochs"] == f"preset {preset}":
        need = -(-scale.min_samples // train_clips)  # ceil
        if need > values["epochs"]:
            notes["epochs"] = (
                f"{values['epochs']} raised: {train_clips} clips x {need} >= {scale.min_samples:,} samples"
            )
            values["epochs"] = need
    cap("epochs", scale.max_epochs)
    cap("clip_len", scale.max_clip_len)
    cap("input_size", scale.max_input_size)
    if sources["input_size"] != "recipe":
        notes.pop("input_size", None)
    for key, value in options.items():
        if value is None or key == "train_size":
            continue
        if key not in values:
            raise ActrecError(f"unknown recipe setting {key!r}")
        values[key], sources[key] = value, "option"
        notes.pop(key, None)
    if values["input_size"] == 0:  # --input-size 0: the store's size
        values["input_size"] = store_size
        notes["input_size"] = "the store's size"
    if options.get("train_size") is not None:
        values["train_size"], sources["train_size"] = options["train_size"], "option"
    else:
        values["train_size"] = max(1, round(values["input_size"] * recipe.train_scale))
        sources["train_size"] = sources["input_size"]
        if recipe.train_scale != 1:
            notes["train_size"] = f"{recipe.train_scale:g} x test"
    if values["optimizer"] not in OPTIMIZERS:
        raise ActrecError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, not {values['optimizer']!r}")
    return Resolved(f"{model}: {recipe.name}", values, sources, notes, recipe.pixels)
