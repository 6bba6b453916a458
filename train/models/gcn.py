"""Graph networks on keypoint coordinates: ST-GCN++ (`STGCNPP`) and CTR-GCN (`CTRGCN`), as PYSKL builds them.

Both map (N, M, T, V, C) coordinates (N clips, M persons, T frames, V joints, C channels: x, y, score for 2D) to
logits (N, num_classes), like PYSKL's and MMAction2's RecognizerGCN. The graph comes from the config's layout
(train/models/graph.py): a built-in one by its name, any other (a layout YAML, `--layout from-file`) from the
definition its keypoint store records, which the config carries as `layout_def`. Submodule names follow
MMAction2/PYSKL (`backbone.gcn.<i>.gcn.A`, `backbone.gcn.<i>.tcn.branches`, `cls_head.fc`, ...) so their
checkpoints load after a key check (train/deploy/convert_gcn.py).

ST-GCN++ (MMAction2 `STGCN(gcn_adaptive='init', gcn_with_res=True, tcn_type='mstcn')` + `GCNHead`): data BN, then
`num_stages` blocks of [graph conv over 3 adjacency subsets (the adjacency itself learnt from its initial value) +
residual] -> [multi-scale temporal conv: 4 dilated 3-tap branches, max pool, 1x1] + block residual; channels
`base_channels` * ch_ratio at each inflate stage, temporal stride 2 at each down stage; mean over time, joints and
persons; dropout; linear.
CTR-GCN (PYSKL `CTRGCN` + `GCNHead`): the graph conv refines the adjacency per channel from the input
(channel-wise topology refinement); its temporal conv has 2 dilated 5-tap branches, max pool and 1x1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from etl.common.errors import ActrecError
from etl.pose.layout_def import LAYOUT_DEF, stored_layout
from etl.pose.skeleton import Layout
from train.models.graph import center_index, spatial_adjacency

# a graph's (3, V, V) adjacency is built before any weight is read: V is bounded (coco_wholebody133: 133)
MAX_JOINTS = 1024

# --------------------------------------------------------------------------------------------- config


@dataclass
class _GCNConfig:
    in_channels: int  # C per joint: 3 for 2D + score (PYSKL's input), 3 for 3D
    num_classes: int
    # the graph's layout: a built-in one's name (etl/pose/skeleton.py), or the name of the one layout_def defines
    layout: str = "coco17"
    # the definition of a layout that is not built in, as its keypoint store records it (etl/pose/layout_def.py:
    # name, joints, limbs, left/right pairs, center); None for a built-in layout, and then left out of saved
    # configs (train/models/__init__.py OPTIONAL_FIELDS), so their checkpoints stay as they were
    layout_def: dict | None = None
    base_channels: int = 64
    num_stages: int = 10
    inflate_stages: tuple[int, ...] = (5, 8)  # 1-based stage numbers that double the channels
    down_stages: tuple[int, ...] = (5, 8)  # ... that halve the frames (temporal stride 2)
    num_person: int = 2  # M: the data BN of CTR-GCN (and ST-GCN++ with data_bn_type 'MVC') is per person
    tcn_dropout: float = 0.0  # inside each temporal conv except the first block's
    dropout: float = 0.0  # before the linear head (GCNHead's default)

    def __post_init__(self) -> None:
        for name in ("inflate_stages", "down_stages"):
            if isinstance(getattr(self, name), list):
                setattr(self, name, tuple(getattr(self, name)))
        for name in ("in_channels", "num_classes", "base_channels", "num_stages", "num_person"):
            if getattr(self, name) < 1:
                raise ActrecError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("dropout", "tcn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ActrecError(
                    f"{type(self).__name__}.{name} must be in [0, 1), got {getattr(self, name)}"
                )
        stages = set(self.inflate_stages) | set(self.down_stages)
        if any(not 2 <= s <= self.num_stages for s in stages):
            raise ActrecError(
                f"{type(self).__name__}: inflate/down stages must lie in 2..num_stages={self.num_stages}, got "
                f"{self.inflate_stages} / {self.down_stages}"
            )
        # one line naming the known layouts (or the definition's fault) when it is not one; a graph needs a centre
        layout = self.graph_layout()
        if layout.n_joints > MAX_JOINTS:
            raise ActrecError(
                f"{type(self).__name__}: layout {layout.name!r} has {layout.n_joints} joints, more than a graph "
                f"network takes ({MAX_JOINTS})"
            )
        center_index(layout)

    def graph_layout(self) -> Layout:
        """The layout the graph is built on: the built-in `layout`, or the one `layout_def` defines."""
        attrs = {"layout": self.layout, **({} if self.layout_def is None else {LAYOUT_DEF: self.layout_def})}
        return stored_layout(attrs, f"{type(self).__name__} layout_def")


@dataclass
class STGCNPPConfig(_GCNConfig):
    """ST-GCN++ as published (MMAction2 `stgcnpp_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py`)."""

    ch_ratio: int = 2
    data_bn_type: str = "VC"  # 'VC': one BN over V*C shared by the persons (the published model); 'MVC'

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.data_bn_type not in ("VC", "MVC"):
            raise ActrecError(f"STGCNPPConfig.data_bn_type must be 'VC' or 'MVC', got {self.data_bn_type!r}")


@dataclass
class CTRGCNConfig(_GCNConfig):
    """CTR-GCN as PYSKL builds it (`ctrgcn_pyskl_ntu60_xsub_hrnet`)."""


# ------------------------------------------------------------------------------------------- building blocks


def _kaiming_conv(conv: nn.Conv2d) -> nn.Conv2d:
    # MMAction2 / PYSKL conv init: Kaiming normal, fan_out; zero bias
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    nn.init.zeros_(conv.bias)
    return conv


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """A residual that is not there (the first block)."""

    def forward(self, x: torch.Tensor) -> int:
        return 0


class TemporalConv(nn.Module):
    """MMAction2 `unit_tcn`: (kernel x 1) conv over time [+ BN]; (N, Cin, T, V) -> (N, Cout, T/stride, V)."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 9, stride: int = 1, dilation: int = 1, norm: bool = True
    ):
        super().__init__()
        pad = (kernel + (kernel - 1) * (dilation - 1) - 1) // 2
        self.conv = _kaiming_conv(
            nn.Conv2d(cin, cout, (kernel, 1), padding=(pad, 0), stride=(stride, 1), dilation=(dilation, 1))
        )
        self.bn = nn.BatchNorm2d(cout) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def _mixed_graph(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    # x (N, K, C, T, V), a (K, V, W) -> (N, C, T, W): out[w] = sum_k sum_v x[k, v] a[k, v, w], as one matmul
    n, k, c, t, v = x.shape
    lhs = x.permute(0, 2, 3, 1, 4).reshape(n, c * t, k * v)
    return (lhs @ a.reshape(k * v, -1)).view(n, c, t, -1)


class GraphConv(nn.Module):
    """MMAction2 `unit_gcn(adaptive='init', conv_pos='pre', with_res=True)`: (N, Cin, T, V) -> (N, Cout, T, V)."""

    def __init__(self, cin: int, cout: int, adjacency: torch.Tensor):
        super().__init__()
        self.num_subsets = adjacency.shape[0]
        self.A = nn.Parameter(adjacency.clone())  # (K, V, V), learnt from PYSKL's spatial graph
        self.conv = nn.Conv2d(cin, cout * self.num_subsets, 1)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU()
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout)) if cin != cout else Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        res = self.down(x)
        y = self.conv(x).view(n, self.num_subsets, -1, t, v)  # (N, K, Cout, T, V)
        return self.act(self.bn(_mixed_graph(y, self.A)) + res)


class MultiScaleTCN(nn.Module):
    """MMAction2 `mstcn`, default ms_cfg: branches (3, d=1..4), max pool 3, 1x1; then BN-ReLU-1x1, BN, dropout."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        dilations = (1, 2, 3, 4)
        n_branches = len(dilations) + 2
        mid = cout // n_branches
        first = cout - mid * (n_branches - 1)  # the first branch takes the remainder
        widths = [first] + [mid] * (n_branches - 1)
        branches: list[nn.Module] = []
        for width, dilation in zip(widths, dilations, strict=False):
            branches.append(
                nn.Sequential(
                    nn.Conv2d(cin, width, 1), nn.BatchNorm2d(width), nn.ReLU(),
                    TemporalConv(width, width, kernel=3, stride=stride, dilation=dilation, norm=False),
                )
            )  # fmt: skip
        branches.append(
            nn.Sequential(
                nn.Conv2d(cin, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(),
                nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0)),
            )
        )  # fmt: skip
        branches.append(nn.Conv2d(cin, mid, 1, stride=(stride, 1)))
        self.branches = nn.ModuleList(branches)
        self.transform = nn.Sequential(nn.BatchNorm2d(cout), nn.ReLU(), nn.Conv2d(cout, cout, 1))
        self.bn = nn.BatchNorm2d(cout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([branch(x) for branch in self.branches], dim=1)
        return self.drop(self.bn(self.transform(y)))


class STGCNBlock(nn.Module):
    def __init__(
        self, cin: int, cout: int, adjacency: torch.Tensor, stride: int, residual: bool, dropout: float
    ):
        super().__init__()
        self.gcn = GraphConv(cin, cout, adjacency)
        self.tcn = MultiScaleTCN(cout, cout, stride=stride, dropout=dropout)
        self.relu = nn.ReLU()
        if not residual:
            self.residual: nn.Module = Zero()
        elif cin == cout and stride == 1:
            self.residual = Identity()
        else:
            self.residual = TemporalConv(cin, cout, kernel=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.tcn(self.gcn(x)) + self.residual(x))


def _data_bn(x: torch.Tensor, bn: nn.BatchNorm1d, per_person: bool) -> torch.Tensor:
    # (N, M, T, V, C) -> normalised per (person,) joint and channel -> (N*M, C, T, V)
    n, m, t, v, c = x.shape
    x = x.permute(0, 1, 3, 4, 2).contiguous()  # (N, M, V, C, T)
    x = bn(x.view(n, m * v * c, t) if per_person else x.view(n * m, v * c, t))
    return x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).contiguous().view(n * m, c, t, v)


def _stage_plan(config: _GCNConfig, ch_ratio: int) -> list[tuple[int, int, int]]:
    """(in channels, out channels, temporal stride) per block; block 1 maps C -> base_channels."""
    plan = [(config.in_channels, config.base_channels, 1)]
    channels, inflations = config.base_channels, 0
    for stage in range(2, config.num_stages + 1):
        inflations += stage in config.inflate_stages
        out = int(config.base_channels * ch_ratio**inflations + 1e-4)
        plan.append((channels, out, 1 + (stage in config.down_stages)))
        channels = out
    return plan


class GCNHead(nn.Module):
    """MMAction2 `GCNHead`: mean over (T, V), then over persons; dropout; linear. (N, M, C, T, V) -> (N, K)."""

    def __init__(self, cin: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else Identity()
        self.fc = nn.Linear(cin, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(x.mean(dim=(3, 4)).mean(dim=1)))


class _GraphModel(nn.Module):
    # What fit and --init-from ask of every model (see train/models/__init__.py):
    memory_format = torch.contiguous_format
    input_memory_format = torch.contiguous_format  # (N, M, T, V, C) batches as they come
    backbone_name = "backbone"
    conv_dims = 0  # no 2D/3D ImageNet or PoseC3D checkpoint initialises it
    has_attention = False
    consumes = "coordinates"  # (N, M, T, V, C) keypoints, not heatmaps
    backbone_class: type[nn.Module]  # STGCNBackbone | CTRGCNBackbone: the one thing the two models differ in

    def __init__(self, config):
        super().__init__()
        self.config = config
        # names as MMAction2's/PYSKL's recognisers (backbone, cls_head): their checkpoints load unrenamed
        self.backbone = self.backbone_class(config)
        self.cls_head = GCNHead(self.backbone.out_channels, config.num_classes, config.dropout)

    def classifier_keys(self) -> set[str]:
        return {"cls_head.fc.weight", "cls_head.fc.bias"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m = x.shape[:2]
        feats = self.backbone(x)  # (N*M, C', T', V)
        return self.cls_head(feats.view(n, m, *feats.shape[1:]))


class STGCNBackbone(nn.Module):
    def __init__(self, config: STGCNPPConfig):
        super().__init__()
        adjacency = torch.from_numpy(spatial_adjacency(config.graph_layout()))
        v, c = adjacency.shape[-1], config.in_channels
        self.per_person = config.data_bn_type == "MVC"
        self.data_bn = nn.BatchNorm1d((config.num_person if self.per_person else 1) * v * c)
        plan = _stage_plan(config, config.ch_ratio)
        self.gcn = nn.ModuleList(
            STGCNBlock(
                cin, cout, adjacency, stride, residual=i > 0, dropout=config.tcn_dropout if i > 0 else 0.0
            )
            for i, (cin, cout, stride) in enumerate(plan)
        )
        self.out_channels = plan[-1][1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _data_bn(x, self.data_bn, self.per_person)
        for block in self.gcn:
            x = block(x)
        return x


class STGCNPP(_GraphModel):
    first_conv = "backbone.gcn.0.gcn.conv.weight"
    backbone_class = STGCNBackbone


# ------------------------------------------------------------------------------------------------ CTR-GCN


class ChannelTopologyGraph(nn.Module):
    """PYSKL `CTRGC`: the subset's adjacency plus a per-channel refinement from the input.

    (N, Cin, T, V), A (V, V) -> (N, Cout, T, V).
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        rel = 8 if cin <= 16 else cin // 8
        self.conv1 = _kaiming_conv(nn.Conv2d(cin, rel, 1))
        self.conv2 = _kaiming_conv(nn.Conv2d(cin, rel, 1))
        self.conv3 = _kaiming_conv(nn.Conv2d(cin, cout, 1))
        self.conv4 = _kaiming_conv(nn.Conv2d(rel, cout, 1))

    def forward(self, x: torch.Tensor, a: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        q, k = self.conv1(x).mean(-2), self.conv2(x).mean(-2)  # (N, R, V) each: pooled over time
        rel = torch.tanh(q.unsqueeze(-1) - k.unsqueeze(-2))  # (N, R, V, V)
        graph = self.conv4(rel) * alpha + a  # (N, Cout, V, V)
        return torch.einsum("ncuv,nctu->nctv", graph, self.conv3(x))


class CTRGraphConv(nn.Module):
    """PYSKL `unit_ctrgcn`: sum over subsets, BN (initialised at 1e-6), residual, ReLU."""

    def __init__(self, cin: int, cout: int, adjacency: torch.Tensor):
        super().__init__()
        self.convs = nn.ModuleList(ChannelTopologyGraph(cin, cout) for _ in range(adjacency.shape[0]))
        if cin != cout:
            self.down = nn.Sequential(_kaiming_conv(nn.Conv2d(cin, cout, 1)), nn.BatchNorm2d(cout))
        else:
            self.down = Identity()
        self.A = nn.Parameter(adjacency.clone())
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = nn.BatchNorm2d(cout)
        nn.init.constant_(self.bn.weight, 1e-6)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = sum(conv(x, self.A[i], self.alpha) for i, conv in enumerate(self.convs))
        return self.relu(self.bn(y) + self.down(x))


class CTRTemporalConv(nn.Module):
    """PYSKL `MSTCN` of CTR-GCN: branches (5, d=1), (5, d=2), max pool 3 [+BN], 1x1 [+BN]; concat, ReLU, dropout."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float):
        super().__init__()
        dilations = (1, 2)
        n_branches = len(dilations) + 2
        width = cout // n_branches
        last = cout - width * (n_branches - 1)  # the 1x1 branch takes the remainder
        branches: list[nn.Module] = [
            nn.Sequential(
                _kaiming_conv(nn.Conv2d(cin, width, 1)), nn.BatchNorm2d(width), nn.ReLU(),
                TemporalConv(width, width, kernel=5, stride=stride, dilation=d),
            )
            for d in dilations
        ]  # fmt: skip
        branches.append(
            nn.Sequential(
                _kaiming_conv(nn.Conv2d(cin, width, 1)), nn.BatchNorm2d(width), nn.ReLU(),
                nn.MaxPool2d((3, 1), stride=(stride, 1), padding=(1, 0)), nn.BatchNorm2d(width),
            )
        )  # fmt: skip
        branches.append(
            nn.Sequential(_kaiming_conv(nn.Conv2d(cin, last, 1, stride=(stride, 1))), nn.BatchNorm2d(last))
        )
        self.branches = nn.ModuleList(branches)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.act(torch.cat([branch(x) for branch in self.branches], dim=1)))


class CTRGCNBlock(nn.Module):
    def __init__(
        self, cin: int, cout: int, adjacency: torch.Tensor, stride: int, residual: bool, dropout: float
    ):
        super().__init__()
        self.gcn1 = CTRGraphConv(cin, cout, adjacency)
        self.tcn1 = CTRTemporalConv(cout, cout, stride, dropout)
        self.relu = nn.ReLU()
        if not residual:
            self.residual: nn.Module = Zero()
        elif cin == cout and stride == 1:
            self.residual = Identity()
        else:
            self.residual = TemporalConv(cin, cout, kernel=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.tcn1(self.gcn1(x)) + self.residual(x))


class CTRGCNBackbone(nn.Module):
    def __init__(self, config: CTRGCNConfig):
        super().__init__()
        adjacency = torch.from_numpy(spatial_adjacency(config.graph_layout()))
        self.data_bn = nn.BatchNorm1d(config.num_person * adjacency.shape[-1] * config.in_channels)
        plan = _stage_plan(config, 2)
        self.net = nn.ModuleList(
            CTRGCNBlock(
                cin, cout, adjacency, stride, residual=i > 0, dropout=config.tcn_dropout if i > 0 else 0.0
            )
            for i, (cin, cout, stride) in enumerate(plan)
        )
        self.out_channels = plan[-1][1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _data_bn(x, self.data_bn, per_person=True)
        for block in self.net:
            x = block(x)
        return x


class CTRGCN(_GraphModel):
    first_conv = "backbone.net.0.gcn1.convs.0.conv3.weight"
    backbone_class = CTRGCNBackbone


# ---------------------------------------------------------------------------------------------- presets

# preset -> overrides of the config defaults (the defaults are the published `full` models), for train/models/__init__.py.
GCN_PRESETS: dict[str, dict[str, dict]] = {
    "full": {"stgcnpp": {}, "ctrgcn": {}},
    # CPU: base 32 is ~1/4 of the multiply-adds of base 64 (every conv is C x C)
    "small": {"stgcnpp": {"base_channels": 32}, "ctrgcn": {"base_channels": 32}},
    # tests: 4 blocks of 8-16 channels
    "tiny": {
        "stgcnpp": {"base_channels": 8, "num_stages": 4, "inflate_stages": (3,), "down_stages": (3,)},
        "ctrgcn": {"base_channels": 8, "num_stages": 4, "inflate_stages": (3,), "down_stages": (3,)},
    },
}
