"""`fit --init-from`: start a model from published or earlier weights, and the fine-tuning recipe around it.

Sources, told apart by their keys (all loaded with weights_only=True):
- an actrec checkpoint (from `fit` or `convert`) of the same model;
- a raw MMAction2 / PYSKL PoseC3D checkpoint (c3d only; renamed as `actrec-train convert` does);
- a torchvision ResNet state dict (`resnet18..152`, cnn_lstm / cnn_lstm_attn: it becomes the frame encoder; its
  ImageNet classifier `fc.*` is dropped; the LSTM, attention and head keep their initialisation).

Input channels that differ (RGB -> 17 joints, a joint model -> joints+limbs) adapt the first conv
(`adapt_input_conv`); a class count that differs re-initialises the classifier, and the report says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from etl.common.errors import ActrecError
from train.checkpoint import check_checkpoint, load_checkpoint
from train.deploy.convert import is_posec3d_state, rename_posec3d, sha256_file, unwrap_state_dict
from train.deploy.convert_gcn import is_stgcnpp

_TORCHVISION_MARKERS = ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight")


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """First-conv weights (O, I, *k) for I input channels -> (O, in_channels, *k).

    As timm's `adapt_input_conv`, but averaging instead of tiling: every new channel gets the mean of the I
    source kernels, and the result is scaled by I / in_channels (3 / C for RGB). The response to a uniform
    input (the same value in every channel) is then exactly the original one for any C (tiling keeps it only
    when C is a multiple of 3); for C = 1 this is timm's sum of the RGB kernels."""
    mean = weight.float().mean(dim=1, keepdim=True)  # (O, 1, *k)
    repeat = [1, in_channels] + [1] * (weight.ndim - 2)
    return (mean.repeat(*repeat) * (weight.shape[1] / in_channels)).to(weight.dtype)


@dataclass
class InitReport:
    source: str
    sha256: str
    kind: str  # actrec | mmaction2/pyskl | torchvision
    loaded: int  # tensors copied as they are
    adapted: list[str] = field(default_factory=list)  # first conv, channel count adapted
    reinitialised: list[str] = field(default_factory=list)  # the classifier, class count differs
    kept_init: list[str] = field(default_factory=list)  # not in the source (e.g. LSTM from torchvision)
    dropped: list[str] = field(default_factory=list)  # in the source, not used (torchvision fc)

    def lines(self) -> list[str]:
        out = [
            f"--init-from {self.source} ({self.kind}, sha256 {self.sha256[:12]}): {self.loaded} tensors loaded"
        ]
        if self.adapted:
            out.append(f"  input channels differ: adapted {', '.join(self.adapted)} (mean RGB kernel x 3/C)")
        if self.reinitialised:
            out.append(
                f"  class count differs: re-initialised the classifier ({', '.join(self.reinitialised)})"
            )
        if self.kept_init:
            modules = sorted({k.split(".")[0] for k in self.kept_init})
            out.append(
                f"  {len(self.kept_init)} tensors not in the source keep their initialisation ({', '.join(modules)})"
            )
        if self.dropped:
            out.append(f"  unused from the source: {', '.join(self.dropped)}")
        return out

    def as_dict(self) -> dict:
        return asdict(self)


def _source_state(
    raw: dict, model: nn.Module, model_name: str, path: Path
) -> tuple[str, dict[str, torch.Tensor], list[str]]:
    """(kind, state dict in actrec names, keys dropped) of an --init-from file."""
    where = f"--init-from {path}"
    if "model_name" in raw and "model" in raw:
        check_checkpoint(raw, path)
        if raw["model_name"] != model_name:
            raise ActrecError(f"{where} is a {raw['model_name']} checkpoint, not {model_name}")
        return "actrec", dict(raw["model"]), []
    state = unwrap_state_dict(raw, where)
    if is_posec3d_state(state):
        if model.conv_dims != 3:
            raise ActrecError(f"{where} is a PoseC3D (c3d) checkpoint, not one for {model_name}")
        return "mmaction2/pyskl", rename_posec3d(state, where), []
    if is_stgcnpp(state):  # MMAction2/PYSKL ST-GCN++: its names are ours (train/deploy/convert_gcn.py)
        if model.consumes != "coordinates":
            raise ActrecError(f"{where} is an ST-GCN++ (stgcnpp) checkpoint, not one for {model_name}")
        return (
            "mmaction2/pyskl",
            {k: v for k, v in state.items() if k.startswith(("backbone.", "cls_head."))},
            [],
        )
    if all(k in state for k in _TORCHVISION_MARKERS):
        if model.conv_dims != 2:
            raise ActrecError(
                f"{where} is a 2D ResNet: it initialises cnn_lstm/cnn_lstm_attn encoders, not {model_name}"
            )
        dropped = sorted(k for k in state if k.startswith("fc."))  # ImageNet classifier
        return (
            "torchvision",
            {f"{model.backbone_name}.{k}": v for k, v in state.items() if not k.startswith("fc.")},
            dropped,
        )
    raise ActrecError(
        f"{where}: not an actrec checkpoint, a PoseC3D (MMAction2/PYSKL) checkpoint or a torchvision ResNet "
        f"state dict (first keys: {', '.join(list(state)[:3])})"
    )


def init_from(model: nn.Module, model_name: str, path: str | Path) -> InitReport:
    """Copy the weights of `path` into `model` (in place), adapting conv1 and the classifier as needed."""
    path = Path(path)
    raw = load_checkpoint(path)
    kind, state, dropped = _source_state(raw, model, model_name, path)
    where = f"--init-from {path}"
    target = model.state_dict()
    head = model.classifier_keys()
    first = model.first_conv
    unexpected = [k for k in state if k not in target]
    if unexpected:
        raise ActrecError(
            f"{where}: {len(unexpected)} tensors have no place in {model_name} ({', '.join(unexpected[:4])})"
        )
    report = InitReport(str(path), sha256_file(path), kind, 0, dropped=dropped)
    new, wrong = {}, []
    for key, current in target.items():
        if key not in state:
            report.kept_init.append(key)
            continue
        src = state[key]
        if src.shape == current.shape:
            new[key] = src
            report.loaded += 1
        elif (
            key == first
            and src.ndim == current.ndim
            and src.shape[0] == current.shape[0]
            and src.shape[2:] == current.shape[2:]
        ):
            new[key] = adapt_input_conv(src, current.shape[1])
            report.adapted.append(f"{key} {src.shape[1]} -> {current.shape[1]} channels")
        elif key in head and src.shape[1:] == current.shape[1:]:
            report.reinitialised.append(f"{key} {src.shape[0]} -> {current.shape[0]} classes")
        else:
            wrong.append(f"{key} {tuple(src.shape)} vs {tuple(current.shape)}")
    if wrong:
        raise ActrecError(
            f"{where}: {len(wrong)} tensors do not fit {model_name} (source vs model: {', '.join(wrong[:3])}); "
            "a different depth/width/preset?"
        )
    if report.loaded == 0:
        raise ActrecError(f"{where}: no tensor of the source fits {model_name}")
    model.load_state_dict(new, strict=False)
    return report


# ------------------------------------------------------------------------------------------- fine-tuning


def optimizer_groups(
    model: nn.Module, lr: float, backbone_lr_scale: float, freeze_backbone_epochs: int, base
) -> tuple[list[dict], list]:
    """AdamW parameter groups and their LambdaLR factors.

    Plain training: one group following `base(epoch)`. Fine-tuning (a backbone lr scale other than 1, or frozen
    backbone epochs): [backbone at lr x scale, the rest at lr]; the backbone's factor is 0 during the frozen
    epochs (AdamW then leaves those weights exactly unchanged: its update and its decay both scale with lr)."""
    if backbone_lr_scale == 1 and freeze_backbone_epochs == 0:
        return [{"params": list(model.parameters()), "lr": lr}], [base]
    prefix = f"{model.backbone_name}."
    backbone = [p for n, p in model.named_parameters() if n.startswith(prefix)]
    rest = [p for n, p in model.named_parameters() if not n.startswith(prefix)]

    def backbone_factor(epoch: int) -> float:
        return 0.0 if epoch < freeze_backbone_epochs else base(epoch)

    groups = [{"params": backbone, "lr": lr * backbone_lr_scale}, {"params": rest, "lr": lr}]
    return groups, [backbone_factor, base]


def freeze_backbone_statistics(model: nn.Module, epoch: int, freeze_backbone_epochs: int) -> None:
    """While the backbone is frozen, its BatchNorm running statistics stay put too (eval mode)."""
    if epoch < freeze_backbone_epochs:
        getattr(model, model.backbone_name).eval()
