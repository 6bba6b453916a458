"""The action-recognition models, nanoGPT style: one dataclass config per model, chosen by name from a dict.

The heatmap models map heatmap clips (B, C, T, H, W) -> logits (B, num_classes); the graph models (stgcnpp,
ctrgcn: train/models/gcn.py) map keypoint coordinates (N, M, T, V, C) -> logits. Each declares what it
`consumes` ("heatmaps" | "coordinates"), which fit compares with what the training source `gives`; softmax
lives in the loss/eval code.

- `c3d`:           PoseC3D (SlowOnly 3D ResNet over the whole volume + I3D head), see train/models/resnet3d.py.
- `cnn_lstm`:      a 2D ResNet encodes every frame, an LSTM runs over the frames, its LAST hidden state -> MLP.
- `cnn_lstm_attn`: as cnn_lstm, plus additive (Bahdanau) attention over ALL LSTM outputs, queried by the last
  state: the head reads [attention context; last state], so attention adds frames to the motion summary.

`build_model(name, preset, in_channels, num_classes, **overrides)` makes a model and its config;
`model_from_config(name, config_dict(config))` rebuilds it from the config a checkpoint saved.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from etl.common.errors import ActrecError
from train.models.gcn import CTRGCN, GCN_PRESETS, STGCNPP, CTRGCNConfig, STGCNPPConfig
from train.models.resnet import ARCH as RESNET_ARCH
from train.models.resnet import ResNet
from train.models.resnet3d import I3DHead, ResNet3dSlowOnly


class _Config:
    """Shared checks for the config dataclasses (mixin: dataclasses do not call __post_init__ of a base)."""

    def _normalise(self) -> None:
        # A config saved as JSON/YAML comes back with lists where we declared tuples.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
        for name in ("in_channels", "num_classes"):
            if getattr(self, name) < 1:
                raise ActrecError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ActrecError(f"{type(self).__name__}.dropout must be in [0, 1), got {self.dropout}")


# --------------------------------------------------------------------------------------------------- C3D


@dataclass
class C3DConfig(_Config):
    """PoseC3D's keypoint model (MMAction2 `ResNet3dSlowOnly` + `I3DHead`); defaults are the paper's."""

    in_channels: int
    num_classes: int
    base_channels: int = 32
    stage_blocks: tuple[int, ...] = (4, 6, 3)
    inflate: tuple[int, ...] = (0, 1, 1)  # 1 = (3, 1, 1) temporal kernel in the blocks of that stage
    spatial_strides: tuple[int, ...] = (2, 2, 2)
    temporal_strides: tuple[int, ...] = (1, 1, 2)
    conv1_stride: int = 1
    pool1_stride: int = 1
    zero_init_residual: bool = True
    dropout: float = 0.5

    def __post_init__(self) -> None:
        self._normalise()
        per_stage = (self.inflate, self.spatial_strides, self.temporal_strides)
        if any(len(t) != len(self.stage_blocks) for t in per_stage):
            raise ActrecError(
                f"C3DConfig: inflate, spatial_strides and temporal_strides need one entry per stage "
                f"(stage_blocks={self.stage_blocks}), got {self.inflate}, {self.spatial_strides}, "
                f"{self.temporal_strides}"
            )


class C3D(nn.Module):
    # What fit and --init-from ask of every model (a fourth model declares the same and nothing else changes):
    memory_format = torch.channels_last_3d  # the layout its convolutions run fastest in on CUDA
    input_memory_format = torch.channels_last_3d  # the layout fit hands it its (B, C, T, H, W) batches in
    consumes = "heatmaps"  # what a training source must give (train/sources: `gives`)
    backbone_name = "backbone"  # the submodule --backbone-lr-scale / --freeze-backbone-epochs act on
    first_conv = "backbone.conv1.weight"  # adapted by --init-from when the input channel count differs
    conv_dims = 3  # a PoseC3D (3D) checkpoint initialises it, a torchvision (2D) ResNet does not
    has_attention = False  # forward(x, return_attention=True) -> (logits, (B, T) frame weights)

    def __init__(self, config: C3DConfig):
        super().__init__()
        self.config = config
        self.backbone = ResNet3dSlowOnly(
            in_channels=config.in_channels,
            base_channels=config.base_channels,
            stage_blocks=config.stage_blocks,
            inflate=config.inflate,
            spatial_strides=config.spatial_strides,
            temporal_strides=config.temporal_strides,
            conv1_stride=config.conv1_stride,
            pool1_stride=config.pool1_stride,
            zero_init_residual=config.zero_init_residual,
        )
        self.head = I3DHead(self.backbone.feat_dim, config.num_classes, config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, T, H, W) -> (B, F, T', H', W') -> (B, K)
        return self.head(self.backbone(x))

    def classifier_keys(self) -> set[str]:
        """The final Linear's weight and bias: what a class-count change re-initialises."""
        return {"head.fc.weight", "head.fc.bias"}


# ---------------------------------------------------------------------------------------------- CNN-LSTM


@dataclass
class CNNLSTMConfig(_Config):
    in_channels: int
    num_classes: int
    resnet_depth: int = 152
    resnet_width: int = 64
    stem_stride: int = 2
    maxpool: bool = True
    zero_init_residual: bool = True  # residual blocks start as identities: helps a deep encoder from scratch
    lstm_hidden: int = 1024
    lstm_layers: int = 1
    head_dims: tuple[int, ...] = (512, 256)
    dropout: float = 0.5
    # 0 = all B*T frames in one encoder pass; >0 = at most this many frames per pass (bounds activation memory
    # at inference; in training BatchNorm then normalises each chunk with its own statistics).
    frame_chunk: int = 0

    def __post_init__(self) -> None:
        self._normalise()
        name = type(self).__name__
        if self.resnet_depth not in RESNET_ARCH:
            raise ActrecError(
                f"{name}.resnet_depth must be one of {sorted(RESNET_ARCH)}, got {self.resnet_depth}"
            )
        if self.stem_stride not in (1, 2):
            raise ActrecError(f"{name}.stem_stride must be 1 or 2, got {self.stem_stride}")
        if self.lstm_layers < 1 or self.lstm_hidden < 1 or self.frame_chunk < 0:
            raise ActrecError(f"{name}: lstm_layers and lstm_hidden must be >= 1 and frame_chunk >= 0")


def _mlp_head(in_dim: int, head_dims: tuple[int, ...], dropout: float, num_classes: int) -> nn.Sequential:
    """in_dim -> [Linear -> ReLU -> Dropout] per entry of head_dims -> Linear -> num_classes."""
    layers: list[nn.Module] = []
    for dim in head_dims:
        hidden = nn.Linear(in_dim, dim)
        nn.init.kaiming_normal_(hidden.weight, nonlinearity="relu")
        nn.init.zeros_(hidden.bias)
        layers += [hidden, nn.ReLU(inplace=True), nn.Dropout(dropout)]
        in_dim = dim
    classifier = nn.Linear(in_dim, num_classes)
    nn.init.normal_(classifier.weight, std=0.01)  # near-uniform softmax at the start
    nn.init.zeros_(classifier.bias)
    layers.append(classifier)
    return nn.Sequential(*layers)


def _init_lstm(lstm: nn.LSTM) -> None:
    for name, p in lstm.named_parameters():
        if name.startswith("weight_ih"):
            nn.init.xavier_uniform_(p)
        elif name.startswith("weight_hh"):
            nn.init.orthogonal_(p)  # per gate block would be purer; the whole matrix is the common shortcut
        else:
            nn.init.zeros_(p)
            if name.startswith("bias_ih"):
                # Gates are ordered (input, forget, cell, output): a forget bias of 1 keeps memory early on.
                hidden = p.shape[0] // 4
                nn.init.ones_(p[hidden : 2 * hidden])


class CNNLSTM(nn.Module):
    """Per-frame 2D ResNet -> LSTM over frames -> last hidden state -> MLP -> logits."""

    memory_format = torch.channels_last  # the frame encoder is 2D
    input_memory_format = torch.channels_last_3d  # (B, C, T, H, W) batches, channels innermost
    consumes = "heatmaps"
    backbone_name = "encoder"
    first_conv = "encoder.conv1.weight"
    conv_dims = 2  # a torchvision ResNet initialises the frame encoder
    has_attention = False

    def __init__(self, config: CNNLSTMConfig):
        super().__init__()
        self.config = config
        self.encoder = ResNet(
            depth=config.resnet_depth,
            in_channels=config.in_channels,
            num_classes=0,  # features only: (N, feat_dim)
            width=config.resnet_width,
            stem_stride=config.stem_stride,
            maxpool=config.maxpool,
            zero_init_residual=config.zero_init_residual,
        )
        self.lstm = nn.LSTM(
            self.encoder.feat_dim,
            config.lstm_hidden,
            num_layers=config.lstm_layers,
            batch_first=True,
            dropout=config.dropout if config.lstm_layers > 1 else 0.0,  # only acts between LSTM layers
        )
        _init_lstm(self.lstm)
        self.head = _mlp_head(config.lstm_hidden, config.head_dims, config.dropout, config.num_classes)

    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> per-frame features (B, T, F)."""
        b, c, t, h, w = x.shape
        # (B, C, T, H, W) -> (B, T, C, H, W) -> (B*T, C, H, W); reshape copies when needed (channels_last input)
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        chunk = self.config.frame_chunk
        if 0 < chunk < b * t:
            feats = torch.cat([self.encoder(f) for f in frames.split(chunk)])  # (B*T, F)
        else:
            feats = self.encoder(frames)  # (B*T, F)
        return feats.reshape(b, t, -1)  # (B, T, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.lstm(self.encode_frames(x))  # h_n (layers, B, H)
        return self.head(h_n[-1])  # last layer's state after the last frame (B, H) -> (B, K)

    def classifier_keys(self) -> set[str]:
        last = len(self.head) - 1  # the MLP head is a Sequential ending in Linear(., num_classes)
        return {f"head.{last}.weight", f"head.{last}.bias"}


# ------------------------------------------------------------------------------------- CNN-LSTM + attention


@dataclass
class CNNLSTMAttnConfig(CNNLSTMConfig):
    attn_dim: int = 256
    # Fixed at True: the LSTM's final state h_T is the attention's query (score_t = v^T tanh(W h_t + U h_T), v
    # starting at zero, i.e. as mean pooling) and the head reads [context; h_T]. The field stays because every
    # checkpoint's model_config holds it; False (the first design: no query, head on the context alone, 6 points
    # behind cnn_lstm on Penn Action, docs/results.md) was removed and is refused.
    query_last: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.query_last is not True:
            raise ActrecError(
                "cnn_lstm_attn with query_last=false (the first attention design) was removed: re-train the "
                "model with this actrec"
            )


class TemporalAttention(nn.Module):
    """Additive (Bahdanau-style) attention pooling over frames queried by q (the LSTM's final state):
    score_t = v^T tanh(W h_t + U q), weights = softmax over t; v starts at zero (uniform weights)."""

    def __init__(self, dim: int, attn_dim: int):
        super().__init__()
        # Created in this order, then re-initialised: the construction draws are part of a seeded run's init.
        self.proj = nn.Linear(dim, attn_dim)  # W (with bias)
        self.query = nn.Linear(dim, attn_dim, bias=False)  # U
        self.score = nn.Linear(attn_dim, 1, bias=False)  # v
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        nn.init.xavier_uniform_(self.query.weight)
        nn.init.zeros_(self.score.weight)

    def forward(self, h: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = self.proj(h)  # (B, T, H) -> (B, T, A)
        keys = keys + self.query(q).unsqueeze(1)  # (B, H) -> (B, 1, A), added to every frame
        scores = self.score(torch.tanh(keys)).squeeze(-1)  # (B, T, A) -> (B, T)
        weights = scores.softmax(dim=1)  # (B, T), sums to 1 over frames
        context = torch.bmm(weights.unsqueeze(1), h).squeeze(1)  # (B, 1, T) @ (B, T, H) -> (B, H)
        return context, weights


class CNNLSTMAttn(CNNLSTM):
    """Per-frame 2D ResNet -> LSTM -> attention over all LSTM outputs -> context [+ last state] -> MLP -> logits."""

    has_attention = True

    def __init__(self, config: CNNLSTMAttnConfig):
        super().__init__(config)
        self.attention = TemporalAttention(config.lstm_hidden, config.attn_dim)
        # The head reads [context; h_T]: it replaces cnn_lstm's head, built (and its init drawn) by super() first,
        # so that a seeded run's weights stay what they have been.
        self.head = _mlp_head(2 * config.lstm_hidden, config.head_dims, config.dropout, config.num_classes)

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        outputs, (h_n, _) = self.lstm(self.encode_frames(x))  # (B, T, H), (layers, B, H)
        last = h_n[-1]  # (B, H): the last layer's state after the last frame
        context, weights = self.attention(outputs, last)  # (B, H), (B, T)
        logits = self.head(torch.cat([context, last], dim=1))  # (B, 2H) -> (B, K)
        return (logits, weights) if return_attention else logits


# ------------------------------------------------------------------------------------ selection by name

MODELS: dict[str, tuple[type[nn.Module], type]] = {
    "c3d": (C3D, C3DConfig),
    "cnn_lstm": (CNNLSTM, CNNLSTMConfig),
    "cnn_lstm_attn": (CNNLSTMAttn, CNNLSTMAttnConfig),
    "stgcnpp": (STGCNPP, STGCNPPConfig),
    "ctrgcn": (CTRGCN, CTRGCNConfig),
}

# preset -> model name -> overrides of the config defaults (the defaults are the `full` models).
# Small: 48 px frames -> 24 (stem stride 2, no max pool) -> 12 -> 6 -> 3 at layer4.
_SMALL_LSTM = {
    "resnet_depth": 18, "resnet_width": 24, "stem_stride": 2, "maxpool": False, "lstm_hidden": 256,
    "head_dims": (128,),
}  # fmt: skip
_TINY_LSTM = {
    "resnet_depth": 18, "resnet_width": 8, "stem_stride": 2, "maxpool": True, "lstm_hidden": 32,
    "head_dims": (32,),
}  # fmt: skip
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The original configurations: PoseC3D's SlowOnly-R50 (base 32, blocks (4, 6, 3)); ResNet-152 + LSTM 1024.
    # GPU territory: one train step of batch 2, T=32, 27x48x48 on 2 CPU threads is ~0.5 s (c3d), ~1-1.3 s (LSTMs).
    "full": {"c3d": {}, "cnn_lstm": {}, "cnn_lstm_attn": {}, **GCN_PRESETS["full"]},
    # A few minutes per epoch on a 2-core CPU (~1250 clips of 27x32x48x48). Measured train step, batch 8,
    # T=32, 27x48x48, 2 threads: c3d ~0.35 s, cnn_lstm(_attn) ~0.40 s (width 32 without max pool: ~0.62 s;
    # width 32 with stride 2 + max pool: ~0.32 s but only 12 px at layer1).
    # C3D keeps PoseC3D's full-resolution 7x7 stem conv but pools with stride 2 (stride 1 there: ~1.5 s).
    "small": {
        "c3d": {"base_channels": 16, "stage_blocks": (2, 2, 2), "pool1_stride": 2},
        "cnn_lstm": _SMALL_LSTM,
        "cnn_lstm_attn": {**_SMALL_LSTM, "attn_dim": 128},
        **GCN_PRESETS["small"],
    },
    # For tests: forward+backward of 2 x 27x8x32x32 in well under a second.
    "tiny": {
        "c3d": {"base_channels": 8, "stage_blocks": (1, 1, 1)},
        "cnn_lstm": _TINY_LSTM,
        "cnn_lstm_attn": {**_TINY_LSTM, "attn_dim": 16},
        **GCN_PRESETS["tiny"],
    },
}


# Config fields a saved config leaves out when they are None (their default): a graph model on a built-in layout
# saves no `layout_def`, so its checkpoints are byte for byte what they were before custom layouts, and those
# load.
OPTIONAL_FIELDS = ("layout_def",)


def _lookup(name: str) -> tuple[type[nn.Module], type]:
    if name not in MODELS:
        raise ActrecError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def _make_config(config_cls: type, values: dict[str, Any]):
    valid = [f.name for f in fields(config_cls)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ActrecError(f"unknown {config_cls.__name__} field(s) {unknown}; valid: {', '.join(valid)}")
    missing = [
        f.name for f in fields(config_cls) if f.name not in values and f.default is dataclasses.MISSING
    ]
    if missing:
        raise ActrecError(f"{config_cls.__name__} needs {missing}")
    return config_cls(**values)


def build_model(name: str, preset: str, in_channels: int, num_classes: int, **overrides: Any):
    """Model `name` at size `preset` ("full", "small", "tiny"), with config fields overridden by `overrides`.

    Returns (model, config); save `config_dict(config)` with a checkpoint to rebuild it.
    """
    model_cls, config_cls = _lookup(name)
    if preset not in PRESETS:
        raise ActrecError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = {**PRESETS[preset][name], **overrides, "in_channels": in_channels, "num_classes": num_classes}
    config = _make_config(config_cls, values)
    return model_cls(config), config


def config_dict(config) -> dict[str, Any]:
    """The config as a checkpoint saves it: `asdict`, less the OPTIONAL_FIELDS that are None."""
    return {k: v for k, v in dataclasses.asdict(config).items() if not (k in OPTIONAL_FIELDS and v is None)}


def model_from_config(name: str, config_dict: dict[str, Any]) -> nn.Module:
    """Rebuild model `name` from a checkpoint's saved `config_dict(config)` (lists are accepted for tuples). A
    config without every field (but OPTIONAL_FIELDS) was saved by an older actrec, whose models this one does not
    translate: refused."""
    model_cls, config_cls = _lookup(name)
    missing = [
        f.name for f in fields(config_cls) if f.name not in config_dict and f.name not in OPTIONAL_FIELDS
    ]
    if missing:
        raise ActrecError(
            f"model_config lacks {', '.join(missing)}: saved by an older actrec; re-train the model with this "
            "one (or re-create it with `actrec-train convert`)"
        )
    return model_cls(_make_config(config_cls, config_dict))


@torch.no_grad()
def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
