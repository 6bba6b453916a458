"""Convert an MMAction2 / PYSKL ST-GCN++ checkpoint into an actrec `STGCNPP` (train/models/gcn.py).

Both toolkits name the recogniser's parts `backbone.*` (STGCN with unit_gcn + mstcn) and `cls_head.fc.*`;
STGCNPP uses the same names, so the conversion is: read the file (a `.pth` through `torch.load(weights_only=True)`,
or an `.npz` of arrays), unwrap `state_dict` / strip DistributedDataParallel's `module.`, recognise ST-GCN++ by its
keys, read the architecture back from the tensor shapes, check the layout's joint count, load strictly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from etl.common.errors import ActrecError
from etl.pose.skeleton import get_layout
from train.models.gcn import STGCNPP, STGCNPPConfig

# Keys only an ST-GCN++ (STGCN with gcn_adaptive='init', tcn_type='mstcn') recogniser has.
STGCNPP_KEYS = ("backbone.data_bn.weight", "backbone.gcn.0.gcn.A", "backbone.gcn.0.tcn.branches.5.weight")
HEAD_KEYS = ("cls_head.fc.weight", "cls_head.fc.bias")


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file: .pth/.pt/.ckpt (torch, weights only) or .npz (arrays by key)."""
    path = Path(path)
    if not path.is_file():
        raise ActrecError(f"{path}: no such checkpoint file")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            state: Mapping = {k: torch.from_numpy(z[k]) for k in z.files}
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a pickle with objects, or not a torch file at all
            raise ActrecError(
                f"{path}: not a weights-only torch checkpoint ({type(exc).__name__}); save its state_dict alone "
                f"(torch.save(ckpt['state_dict'], ...)) or as .npz"
            ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ActrecError(f"{path}: holds no state dict (a mapping of parameter names to tensors)")
    return {re.sub(r"^module\.", "", k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def is_stgcnpp(state: Mapping[str, torch.Tensor]) -> bool:
    return all(k in state for k in STGCNPP_KEYS)


def _block_indices(state: Mapping[str, torch.Tensor]) -> list[int]:
    found = {int(m.group(1)) for k in state if (m := re.match(r"backbone\.gcn\.(\d+)\.", k))}
    return sorted(found)


def config_from_state(state: Mapping[str, torch.Tensor], layout: str) -> STGCNPPConfig:
    """The STGCNPPConfig whose model has exactly these tensors (shapes), on `layout`."""
    if not is_stgcnpp(state):
        missing = [k for k in STGCNPP_KEYS if k not in state]
        raise ActrecError(
            f"not an MMAction2/PYSKL ST-GCN++ checkpoint: it lacks {missing}; convert supports STGCN with "
            f"gcn_adaptive='init' and tcn_type='mstcn' (the stgcnpp configs)"
        )
    if any(k not in state for k in HEAD_KEYS):
        raise ActrecError(
            "the checkpoint has an ST-GCN++ backbone but no cls_head.fc: save the whole recogniser"
        )
    n_subsets, v, _ = state["backbone.gcn.0.gcn.A"].shape
    joints = get_layout(layout).n_joints
    if v != joints:
        raise ActrecError(
            f"the checkpoint's graph has {v} joints, layout {layout!r} has {joints}: pass the layout it was "
            f"trained on (coco17 for MMAction2/PYSKL 'coco', ntu25 for 'nturgb+d', openpose18 for 'openpose')"
        )
    if n_subsets != 3:
        raise ActrecError(
            f"the checkpoint's graph has {n_subsets} subsets; STGCNPP uses the 3 of mode 'spatial'"
        )
    blocks = _block_indices(state)
    widths = [state[f"backbone.gcn.{i}.gcn.bn.weight"].shape[0] for i in blocks]
    in_channels = state["backbone.gcn.0.gcn.conv.weight"].shape[1]
    bn_width = state["backbone.data_bn.weight"].shape[0]
    persons, rest = divmod(bn_width, v * in_channels)
    if rest:
        raise ActrecError(
            f"data_bn has {bn_width} channels, not a multiple of joints x channels = {v * in_channels}"
        )
    # a residual conv means the width or the frame rate changes; which of the two the weights cannot tell (1x1
    # conv): every published config downsamples where it inflates, so a residual conv is taken as stride 2
    down = tuple(i + 1 for i in blocks[1:] if f"backbone.gcn.{i}.residual.conv.weight" in state)
    inflate = tuple(i + 1 for i in blocks[1:] if widths[i] != widths[i - 1])
    ratios = {widths[i] // widths[i - 1] for i in blocks[1:] if widths[i] != widths[i - 1]}
    return STGCNPPConfig(
        in_channels=in_channels,
        num_classes=state["cls_head.fc.weight"].shape[0],
        layout=layout,
        base_channels=widths[0],
        num_stages=len(blocks),
        inflate_stages=inflate,
        down_stages=down,
        num_person=persons if persons > 1 else 2,  # only an MVC data BN depends on it
        ch_ratio=ratios.pop() if len(ratios) == 1 else 2,
        data_bn_type="MVC" if persons > 1 else "VC",
    )


def stgcnpp_from_state(state: Mapping[str, torch.Tensor], layout: str) -> tuple[STGCNPP, STGCNPPConfig]:
    """An STGCNPP carrying the checkpoint's weights (strict: every tensor used, every parameter set)."""
    config = config_from_state(state, layout)
    model = STGCNPP(config)
    ours = model.state_dict()
    theirs = {k: v for k, v in state.items() if k.startswith(("backbone.", "cls_head.")) and k in ours}
    unused = sorted(k for k in state if k.startswith(("backbone.", "cls_head.")) and k not in ours)
    missing = sorted(set(ours) - set(theirs))
    if unused or missing:
        raise ActrecError(
            f"the ST-GCN++ checkpoint does not match STGCNPP: unused {unused[:3]}, missing {missing[:3]} "
            f"({len(unused)} / {len(missing)} in all)"
        )
    for k, v in theirs.items():
        if v.shape != ours[k].shape:
            raise ActrecError(
                f"{k}: the checkpoint's shape {tuple(v.shape)} != STGCNPP's {tuple(ours[k].shape)}"
            )
    model.load_state_dict({k: v.to(ours[k].dtype) for k, v in theirs.items()})
    return model, config
