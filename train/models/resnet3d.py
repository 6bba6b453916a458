"""PoseC3D's backbone: a SlowOnly-style 3D ResNet pathway for heatmap volumes, plus its I3D head.

Follows MMAction2's `ResNet3dSlowOnly` as configured in PoseC3D (`posec3d/slowonly_r50_*keypoint*.py`):
depth 50 (Bottleneck3d, expansion 4), base_channels 32, 3 stages of (4, 6, 3) blocks, conv1 kernel (1, 7, 7)
at stride 1, a (1, 3, 3) max pool at stride 1, spatial strides (2, 2, 2), temporal strides (1, 1, 2), inflate
(0, 1, 1) in "3x1x1" style (an inflated block has a (3, 1, 1) temporal kernel in its conv1), no pool2, zero-init of
the last BN in each residual branch (ResNet3d's default). Module names are ours (conv/bn pairs as torchvision's
2D ResNet, `downsample.0/1`), not MMAction2's ConvModule names, so its checkpoints do not load directly.

Heatmaps are small (48-64 px) and the network never strides at the stem: a 56x56 input becomes 28, 14, 7 over
the three stages, and the temporal axis is halved once (in the last stage).
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, kernel, stride=1, padding=0) -> tuple[nn.Conv3d, nn.BatchNorm3d]:
    return nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False), nn.BatchNorm3d(cout)


class Bottleneck3d(nn.Module):
    """1x1x1 (or 3x1x1 when inflated) -> 1x3x3 (strided, "pytorch" style) -> 1x1x1 (x4 channels), + shortcut."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        spatial_stride: int = 1,
        temporal_stride: int = 1,
        inflate: bool = False,
        downsample: nn.Module | None = None,
    ):
        super().__init__()
        # "3x1x1" inflation: the temporal kernel sits on conv1 and the spatial 3x3 stays 2D-like.
        k1, p1 = ((3, 1, 1), (1, 0, 0)) if inflate else ((1, 1, 1), (0, 0, 0))
        self.conv1, self.bn1 = _conv_bn(inplanes, planes, k1, padding=p1)
        stride = (temporal_stride, spatial_stride, spatial_stride)
        self.conv2, self.bn2 = _conv_bn(planes, planes, (1, 3, 3), stride=stride, padding=(0, 1, 1))
        self.conv3, self.bn3 = _conv_bn(planes, planes * self.expansion, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet3dSlowOnly(nn.Module):
    """(B, C, T, H, W) -> feature map (B, feat_dim, T', H', W') with feat_dim = 4 * base * 2**(stages-1)."""

    def __init__(
        self,
        in_channels: int,
        base_channels: int = 32,
        stage_blocks: tuple[int, ...] = (4, 6, 3),
        inflate: tuple[int, ...] = (0, 1, 1),
        spatial_strides: tuple[int, ...] = (2, 2, 2),
        temporal_strides: tuple[int, ...] = (1, 1, 2),
        conv1_kernel: tuple[int, int, int] = (1, 7, 7),
        conv1_stride: int = 1,
        pool1_stride: int = 1,
        zero_init_residual: bool = True,
    ):
        super().__init__()
        n = len(stage_blocks)
        if not (len(inflate) == len(spatial_strides) == len(temporal_strides) == n):
            raise ValueError(
                f"stage_blocks, inflate, spatial_strides and temporal_strides need one entry per stage, got "
                f"{stage_blocks}, {inflate}, {spatial_strides}, {temporal_strides}"
            )
        pad = tuple((k - 1) // 2 for k in conv1_kernel)
        self.conv1, self.bn1 = _conv_bn(
            in_channels, base_channels, conv1_kernel, stride=(1, conv1_stride, conv1_stride), padding=pad
        )
        self.relu = nn.ReLU(inplace=True)
        # Stride 1 in PoseC3D: a 3x3 max filter that spreads the peaky heatmaps a little, no downsampling.
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(1, pool1_stride, pool1_stride), padding=(0, 1, 1))

        # Stages are named layer1..layerN as in MMAction2/torchvision.
        inplanes = base_channels
        self.num_stages = n
        for i, blocks in enumerate(stage_blocks):
            planes = base_channels * 2**i
            stage = self._make_stage(
                inplanes, planes, blocks, spatial_strides[i], temporal_strides[i], bool(inflate[i])
            )
            self.add_module(f"layer{i + 1}", stage)
            inplanes = planes * Bottleneck3d.expansion
        self.feat_dim = inplanes

        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck3d):
                    nn.init.zeros_(m.bn3.weight)

    @staticmethod
    def _make_stage(inplanes, planes, blocks, spatial_stride, temporal_stride, inflate) -> nn.Sequential:
        out = planes * Bottleneck3d.expansion
        downsample = None
        if spatial_stride != 1 or temporal_stride != 1 or inplanes != out:
            stride = (temporal_stride, spatial_stride, spatial_stride)
            downsample = nn.Sequential(*_conv_bn(inplanes, out, 1, stride=stride))
        layers = [Bottleneck3d(inplanes, planes, spatial_stride, temporal_stride, inflate, downsample)]
        layers += [Bottleneck3d(out, planes, inflate=inflate) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, T, H, W) -> (B, base, T, H, W): no stem stride in PoseC3D
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        # PoseC3D strides: -> (B, 4*base, T, H/2, W/2) -> (B, 8*base, T, H/4, W/4) -> (B, 16*base, T/2, H/8, W/8)
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


class I3DHead(nn.Module):
    """(B, F, T', H', W') -> global average pool -> dropout -> linear -> logits (B, num_classes)."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)  # MMAction2's I3DHead init
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)  # (B, F)
        return self.fc(self.dropout(x))
