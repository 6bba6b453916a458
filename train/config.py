"""`actrec-train fit`'s settings as plain data, in a module with no heavy imports: the command line takes every
option's default from `FitConfig` and builds the config from the parsed options field by field, so the two cannot
drift (tests/test_train_settings.py holds FitConfig, the fit options and params.yaml's `train:` block together)."""

from __future__ import annotations

from dataclasses import dataclass

from etl.common.errors import ActrecError
from etl.heatmaps.spec import RenderSpec

SCHEDULES = ("cosine", "step", "constant")
OPTIMIZERS = ("adamw", "sgd")
SOURCES = ("heatmaps", "keypoints", "coordinates")
# `--source coordinates` (graph models): the input stream (train/sources/streams.py) and which coordinates
STREAMS = ("j", "b", "jm", "bm")
COORDS = ("2d", "3d")
# FitConfig fields only `--source coordinates` reads: a checkpoint of another source does not record them, so
# heatmap runs keep their checkpoints byte for byte (train/fit.py saved_fit_config)
COORDINATE_FIELDS = ("stream", "coords", "strong_augment")
PRECISIONS = ("auto", "bf16", "fp32")  # autocast of forward passes; auto = bf16 on CUDA, fp32 on a CPU
# `--source keypoints` takes the spec's drawn fields (RenderSpec.draw_fields) as options, with their defaults
_RENDER = RenderSpec()


@dataclass
class FitConfig:
    store: str
    model: str = "cnn_lstm_attn"
    out: str = "runs/run"
    preset: str = "small"  # model size, and how the recipe is scaled (train/recipes.py PRESET_SCALES)
    # None = the model's recipe (train/recipes.py), scaled by the preset; a value overrides it
    epochs: int | None = None
    clip_len: int | None = None  # frames sampled per clip
    batch_size: int = 16  # an SGD recipe's lr scales with it (PYSKL: 16 clips per GPU)
    optimizer: str | None = None  # adamw | sgd
    lr: float | None = None
    momentum: float | None = None  # sgd
    nesterov: bool | None = None  # sgd
    weight_decay: float | None = None
    schedule: str | None = None  # cosine | step | constant, per iteration
    warmup_epochs: int | None = None
    step_size: int = 30  # schedule "step": lr x 0.1 every step_size epochs
    label_smoothing: float | None = None
    grad_clip: float | None = None  # max gradient norm; 0 = off
    dropout: float | None = None
    train_where: str = "split == 'train'"
    val_where: str = "split == 'test'"
    input_size: int | None = None  # model (test) input size; 0 = the store's size
    train_size: int | None = None  # training crops are resized to it (PoseC3D: 56 px for 64 px test)
    augment: bool = True  # random resized crop + flip (PoseC3D train geometry)
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    # CPU threads of the training process: float sums are split by thread count, so a fixed count gives the
    # same numbers on any core count (docs/pipeline.md, determinism); 0 = torch's default (all cores)
    threads: int = 2
    # bf16 autocast: on CUDA by default; on a CPU with avx512_bf16 it trains c3d/cnn_lstm small 1.3-1.5x faster
    # (docs/benchmarks.md) but changes the numbers, so a CPU default stays fp32
    precision: str = "auto"
    resume: bool = False
    overwrite: bool = False  # replace a run in `out` (else fit refuses to touch it)
    source: str = "heatmaps"  # heatmaps (the cached store) | keypoints (rendered on the fly) | coordinates (graph models)
    renderer: str = "auto"  # keypoints: numba (loader workers) | torch (on the device) | auto (torch on CUDA)
    channels: str = _RENDER.channels  # render settings of --source keypoints (the store's are used otherwise)
    size: int = _RENDER.size
    sigma: float = _RENDER.sigma
    padding: float = _RENDER.padding
    eps: float = _RENDER.eps
    dtype: str = _RENDER.dtype
    stream: str = "j"  # coordinates: j (joints) | b (bones) | jm | bm (their motion)
    coords: str = "2d"  # coordinates: 2d (x, y, score) | 3d (x, y, z; a store with 3D keypoints)
    strong_augment: bool = False  # coordinates: PYSKL's random rotation and scaling of the keypoints
    # fine-tuning (train/deploy/pretrained.py): weights to start from, backbone lr factor, epochs with a frozen backbone
    init_from: str | None = None
    backbone_lr_scale: float = 1.0
    freeze_backbone_epochs: int = 0

    def render_spec(self) -> RenderSpec:
        """The spec `--source keypoints` renders with: the drawn fields from this config, the rest defaults."""
        return RenderSpec(**{name: getattr(self, name) for name in RenderSpec.draw_fields()})

    def coordinate_settings(self) -> dict:
        """What `--source coordinates` reads the store with (train/sources/coordinates.py)."""
        return {name: getattr(self, name) for name in COORDINATE_FIELDS}

    def bf16(self, device_type: str) -> bool:
        """Whether forward passes run under bf16 autocast on this device."""
        return self.precision == "bf16" or (self.precision == "auto" and device_type == "cuda")

    def check(self) -> None:
        from train.models import MODELS

        if self.source not in SOURCES:
            raise ActrecError(f"--source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if self.stream not in STREAMS:
            raise ActrecError(f"--stream must be one of {', '.join(STREAMS)}, not {self.stream!r}")
        if self.coords not in COORDS:
            raise ActrecError(f"--coords must be one of {', '.join(COORDS)}, not {self.coords!r}")
        if self.precision not in PRECISIONS:
            raise ActrecError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ActrecError(f"--schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ActrecError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        for name in ("epochs", "clip_len", "batch_size", "step_size", "train_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ActrecError(f"--{name.replace('_', '-')} must be >= 1")
        if self.seed < 0:
            raise ActrecError("--seed must be >= 0")
        if self.lr is not None and self.lr <= 0:
            raise ActrecError("--lr must be positive")
        for name in (
            "momentum",
            "weight_decay",
            "warmup_epochs",
            "label_smoothing",
            "grad_clip",
            "input_size",
        ):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ActrecError(f"--{name.replace('_', '-')} must be >= 0")
        if self.model not in MODELS:
            raise ActrecError(f"--model must be one of {', '.join(MODELS)}, not {self.model!r}")
        if self.backbone_lr_scale < 0 or self.freeze_backbone_epochs < 0:
            raise ActrecError("--backbone-lr-scale and --freeze-backbone-epochs must be >= 0")
