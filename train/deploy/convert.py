"""`actrec-train convert`: a PoseC3D checkpoint of the MMAction2/PYSKL model zoo -> a standalone actrec checkpoint.

actrec's `c3d` is MMAction2's `ResNet3dSlowOnly` + `I3DHead` layer for layer, with torchvision-style module
names instead of MMCV's ConvModule names. MMAction2 1.x, MMAction2 0.x and PYSKL all save the same names (under
`state_dict`, or bare; `module.` when saved from a DDP wrapper), so conversion is a rename:

    backbone.conv1.conv.weight                  -> backbone.conv1.weight
    backbone.conv1.bn.*                         -> backbone.bn1.*
    backbone.layerI.J.convK.conv.weight         -> backbone.layerI.J.convK.weight
    backbone.layerI.J.convK.bn.*                -> backbone.layerI.J.bnK.*
    backbone.layerI.J.downsample.conv.weight    -> backbone.layerI.J.downsample.0.weight
    backbone.layerI.J.downsample.bn.*           -> backbone.layerI.J.downsample.1.*
    cls_head.fc_cls.{weight,bias}               -> head.fc.{weight,bias}

The model config is read off the tensor shapes (channels, stage blocks, inflated stages); strides are PoseC3D's,
which weights cannot show. Render settings (sigma, heatmap size, clip length) come from the config text the
checkpoint embeds (`meta.cfg` in 1.x, `meta.config` in 0.x/PYSKL) when present, else PoseC3D's defaults; options
override both. Everything is loaded with weights_only=True.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from etl.common.errors import ActrecError
from etl.pose.skeleton import get_layout
from train.checkpoint import check_state_dict, load_checkpoint, render_settings, save_checkpoint

SOURCES = ("mmaction2", "pyskl")
CHANNELS = ("joints", "limbs")  # PoseC3D trains joint and limb models separately
# PoseC3D's keypoint configs: GeneratePoseTarget(sigma=0.6), test crops of 64 px, UniformSampleFrames(48).
DEFAULTS = {"sigma": 0.6, "size": 64, "clip_len": 48}

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_RENAMES = [
    (re.compile(r"backbone\.conv1\.conv\.weight"), r"backbone.conv1.weight"),
    (re.compile(rf"backbone\.conv1\.bn\.{_BN}"), r"backbone.bn1.\1"),
    (re.compile(r"backbone\.(layer\d+\.\d+)\.conv(\d)\.conv\.weight"), r"backbone.\1.conv\2.weight"),
    (re.compile(rf"backbone\.(layer\d+\.\d+)\.conv(\d)\.bn\.{_BN}"), r"backbone.\1.bn\2.\3"),
    (re.compile(r"backbone\.(layer\d+\.\d+)\.downsample\.conv\.weight"), r"backbone.\1.downsample.0.weight"),
    (re.compile(rf"backbone\.(layer\d+\.\d+)\.downsample\.bn\.{_BN}"), r"backbone.\1.downsample.1.\2"),
    (re.compile(r"cls_head\.fc_cls\.(weight|bias)"), r"head.fc.\1"),
]
MMACTION_MARKER = "backbone.conv1.conv.weight"  # present in every PoseC3D checkpoint, absent from ours


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unwrap_state_dict(ckpt: dict, where: str) -> dict[str, torch.Tensor]:
    """The weights of a zoo checkpoint: `state_dict` (mmcv/mmengine) or the bare dict; DDP's `module.` dropped."""
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, dict) or not state:
        raise ActrecError(f"{where}: no state_dict of weights inside")
    out = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ActrecError(
                f"{where}: the state_dict maps {key!r} to a {type(value).__name__}, not a tensor"
            )
        out[key.removeprefix("module.")] = value
    return out


def is_posec3d_state(state: dict) -> bool:
    return MMACTION_MARKER in state


def rename_posec3d(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """MMAction2/PYSKL key names -> actrec's; unknown keys are an error naming them."""
    out, unknown = {}, []
    for key, value in state.items():
        for pattern, repl in _RENAMES:
            if pattern.fullmatch(key):
                out[pattern.sub(repl, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f", ... ({len(unknown) - 5} more)" if len(unknown) > 5 else "")
        raise ActrecError(
            f"{where}: {len(unknown)} key(s) that are not PoseC3D's ResNet3dSlowOnly + I3DHead: {shown}"
        )
    return out


def c3d_config_from_state(state: dict[str, torch.Tensor], where: str) -> dict:
    """The C3DConfig fields the (renamed) tensors show: channels, blocks per stage, which stages inflate."""
    from train.models import C3DConfig

    try:
        conv1 = state["backbone.conv1.weight"]  # (base, C, 1, 7, 7)
        fc = state["head.fc.weight"]  # (K, F)
    except KeyError as exc:
        raise ActrecError(f"{where}: missing {exc.args[0]} (after renaming)") from None
    if conv1.ndim != 5 or tuple(conv1.shape[2:]) != (1, 7, 7) or fc.ndim != 2:
        raise ActrecError(
            f"{where}: conv1 {tuple(conv1.shape)} / fc {tuple(fc.shape)} are not PoseC3D's (1, 7, 7) stem and "
            "linear head"
        )
    blocks: dict[int, set[int]] = {}
    for key in state:
        m = re.match(r"backbone\.layer(\d+)\.(\d+)\.", key)
        if m:
            blocks.setdefault(int(m[1]), set()).add(int(m[2]))
    stages = sorted(blocks)
    if stages != [1, 2, 3] or any(blocks[s] != set(range(len(blocks[s]))) for s in stages):
        found = {s: len(b) for s, b in blocks.items()}
        raise ActrecError(f"{where}: expected 3 stages layer1..3 (PoseC3D), found blocks per stage {found}")
    inflate = []
    for s in stages:
        kernels = {state[f"backbone.layer{s}.{j}.conv1.weight"].shape[2] for j in blocks[s]}
        if len(kernels) != 1 or kernels - {1, 3}:
            raise ActrecError(f"{where}: layer{s} mixes temporal kernels {sorted(kernels)} (PoseC3D: 1 or 3)")
        inflate.append(int(kernels.pop() == 3))
    defaults = C3DConfig(in_channels=1, num_classes=1)
    return {
        **asdict(defaults),
        "in_channels": int(conv1.shape[1]),
        "num_classes": int(fc.shape[0]),
        "base_channels": int(conv1.shape[0]),
        "stage_blocks": [len(blocks[s]) for s in stages],
        "inflate": inflate,
        "spatial_strides": list(defaults.spatial_strides),
        "temporal_strides": list(defaults.temporal_strides),
    }


def config_hints(ckpt: dict) -> dict:
    """sigma / size / clip_len from the config text a zoo checkpoint embeds (missing ones are left out)."""
    meta = ckpt.get("meta")
    text = None
    if isinstance(meta, dict):
        text = next((meta[k] for k in ("cfg", "config") if isinstance(meta.get(k), str)), None)
    if not text:
        return {}
    hints: dict = {}
    flat = " ".join(text.split())
    m = re.search(r"GeneratePoseTarget['\"][^)]*?sigma\s*=\s*([0-9.]+)", flat)
    if m:
        hints["sigma"] = float(m[1])
    m = re.search(r"UniformSampleFrames['\"]\s*,\s*clip_len\s*=\s*(\d+)", flat)
    if m:
        hints["clip_len"] = int(m[1])
    # The test pipeline comes last in a config: its crop (or fixed resize) is the size the model was tested at.
    crops = re.findall(r"CenterCrop['\"]\s*,\s*crop_size\s*=\s*\(?\s*(\d+)", flat) or re.findall(
        r"Resize['\"]\s*,\s*scale\s*=\s*\(\s*(\d+)\s*,\s*\d+\s*\)\s*,\s*keep_ratio\s*=\s*False", flat
    )
    if crops:
        hints["size"] = int(crops[-1])
    m = re.search(r"with_kp\s*=\s*(True|False)\s*,\s*with_limb\s*=\s*(True|False)", flat)
    if m:
        hints["channels"] = {("True", "False"): "joints", ("False", "True"): "limbs"}.get((m[1], m[2]))
    return hints


def read_classes(classes: str, num_classes: int, where: str) -> list[str]:
    """--classes N (names class_0..) or a text file with one name per line (e.g. MMAction2's label maps)."""
    if classes.isdigit():
        names = [f"class_{i}" for i in range(int(classes))]
    else:
        path = Path(classes)
        if not path.is_file():
            raise ActrecError(f"--classes {classes}: neither a number nor a file")
        try:
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ActrecError(f"--classes {classes}: cannot read ({exc})") from None
    if len(names) != num_classes:
        raise ActrecError(f"--classes gives {len(names)} names, {where} has a head of {num_classes} classes")
    if len(set(names)) != len(names):
        raise ActrecError(f"--classes {classes}: names are not unique")
    return names


@dataclass
class ConvertReport:
    out: Path
    num_classes: int
    in_channels: int
    n_tensors: int
    settings: dict  # sigma, size, clip_len and where each came from
    notes: list[str] = field(default_factory=list)
    model_name: str = "c3d"


def convert(
    src: str | Path,
    *,
    source: str,
    layout: str,
    channels: str,
    classes: str,
    out: str | Path,
    sigma: float | None = None,
    size: int | None = None,
    clip_len: int | None = None,
    stream: str = "j",
    coords: str = "2d",
) -> ConvertReport:
    src, out = Path(src), Path(out)
    where = f"{src}"
    if source not in SOURCES:
        raise ActrecError(f"--from must be one of {', '.join(SOURCES)}, not {source!r}")
    from train.deploy.convert_gcn import is_stgcnpp

    ckpt = load_checkpoint(src)
    if is_stgcnpp(unwrap_state_dict(ckpt, where)):  # recognised by its keys (train/deploy/convert_gcn.py)
        return _convert_stgcnpp(ckpt, src, source, layout, classes, out, clip_len, stream, coords)
    if channels not in CHANNELS:
        raise ActrecError(f"--channels must be one of {', '.join(CHANNELS)}, not {channels!r}")
    lay = get_layout(layout)
    state = unwrap_state_dict(ckpt, where)
    if not is_posec3d_state(state):
        raise ActrecError(f"{where}: no {MMACTION_MARKER}: not a PoseC3D (ResNet3dSlowOnly) checkpoint")
    state = rename_posec3d(state, where)
    config = c3d_config_from_state(state, where)
    n_channels = len(lay.channel_names(channels))
    if config["in_channels"] != n_channels:
        raise ActrecError(
            f"{where} takes {config['in_channels']} input channels, {layout} {channels} has {n_channels}"
        )
    names = read_classes(classes, config["num_classes"], where)

    from train.models import model_from_config

    with torch.device("meta"):
        skeleton = model_from_config("c3d", config)
    check_state_dict(state, skeleton.state_dict(), where)

    hints = config_hints(ckpt)
    notes = []
    if hints.get("channels") and hints["channels"] != channels:
        notes.append(f"the embedded config renders {hints['channels']}, converted as --channels {channels}")
    chosen, origin = {}, {}
    for key, value in (("sigma", sigma), ("size", size), ("clip_len", clip_len)):
        if value is not None:
            chosen[key], origin[key] = value, "option"
        elif key in hints:
            chosen[key], origin[key] = hints[key], "checkpoint config"
        else:
            chosen[key], origin[key] = DEFAULTS[key], "PoseC3D default"
    render = render_settings(layout, channels, size=int(chosen["size"]), sigma=float(chosen["sigma"]))
    result = {
        "model_name": "c3d",
        "model_config": config,
        "model": state,
        "classes": names,
        "render": render,
        "fit_config": {"clip_len": int(chosen["clip_len"])},
        "converted_from": {"path": str(src), "sha256": sha256_file(src), "format": source},
    }
    # The result must pass the loader every command uses (render sizes, clip length within bounds).
    from train.checkpoint import check_checkpoint

    check_checkpoint(result, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, result)
    return ConvertReport(
        out=out,
        num_classes=config["num_classes"],
        in_channels=config["in_channels"],
        n_tensors=len(state),
        settings={k: f"{chosen[k]} ({origin[k]})" for k in chosen},
        notes=notes,
    )


GCN_CLIP_LEN = 100  # PYSKL's / MMAction2's ST-GCN++ configs: UniformSample(100)


def _convert_stgcnpp(
    ckpt: dict,
    src: Path,
    source: str,
    layout: str,
    classes: str,
    out: Path,
    clip_len,
    stream: str,
    coords: str,
) -> ConvertReport:
    """An ST-GCN++ recogniser (MMAction2 STGCN + GCNHead, PYSKL) -> an actrec stgcnpp checkpoint whose
    "coordinates" record says how evaluate reads a keypoint store for it (--stream, --coords, --layout)."""
    from train.config import COORDS, STREAMS
    from train.deploy.convert_gcn import stgcnpp_from_state
    from train.models import config_dict
    from train.sources.coordinates import CHANNELS, NUM_PERSON

    where = f"{src}"
    if stream not in STREAMS or coords not in COORDS:
        raise ActrecError(
            f"--stream must be one of {', '.join(STREAMS)} and --coords one of {', '.join(COORDS)}"
        )
    get_layout(layout)
    model, config = stgcnpp_from_state(unwrap_state_dict(ckpt, where), layout)
    names = read_classes(classes, config.num_classes, where)
    frames = int(clip_len or GCN_CLIP_LEN)
    result = {
        "model_name": "stgcnpp",
        "model_config": config_dict(config),
        "model": model.state_dict(),
        "classes": names,
        "coordinates": {
            "layout": layout,
            "stream": stream,
            "coords": coords,
            "strong_augment": False,
            "clip_len": frames,
            "channels": CHANNELS[coords],
            "num_person": NUM_PERSON,
        },
        "fit_config": {"clip_len": frames},
        "converted_from": {"path": str(src), "sha256": sha256_file(src), "format": source},
    }
    from train.checkpoint import check_checkpoint

    check_checkpoint(result, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, result)
    origin = "option" if clip_len else "ST-GCN++ default"
    settings = {"stream": stream, "coords": coords, "clip_len": f"{frames} ({origin})"}
    return ConvertReport(
        out, config.num_classes, config.in_channels, len(result["model"]), settings, [], "stgcnpp"
    )
