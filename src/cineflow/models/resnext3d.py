"""3D ResNeXt (Hara, Kataoka and Satoh, "Can spatiotemporal 3D CNNs retrace the history of 2D CNNs and
ImageNet?", CVPR 2018): the Stall Catchers study's "big architecture", ResNeXt-101 32x4d-style bottlenecks
in 3D, in the key layout of Hara's published Kinetics checkpoints (3D-ResNets-PyTorch `resnext.py`:
conv1, bn1, layer1..4 with conv1/bn1/conv2/bn2/conv3/bn3/downsample.0/1, fc), so that their state dict
(`state_dict`, keys under `module.`) loads through `weights:`.

Hara's pooling is an AvgPool3d of a fixed kernel, (ceil(sample_duration / 16), ceil(size / 32),
ceil(size / 32)) with stride 1, flattened: longer clips keep several time steps side by side, which is
why the study's encoder takes 6144 = 2048 x 3 features for 40 frames at 112 px (sample_duration 16).
`sample_duration: null` pools globally instead.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cineflow.config import ConfigError
from cineflow.models.builder import MODELS, match_channels

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class Bottleneck(nn.Module):
    """Hara's ResNeXtBottleneck: 1x1x1 -> grouped 3x3x3 (cardinality groups) -> 1x1x1 with 2x expansion,
    shortcut B (a strided 1x1x1 convolution and BatchNorm where the shape changes)."""

    expansion = 2

    def __init__(self, inplanes: int, planes: int, cardinality: int, stride: int = 1):
        super().__init__()
        mid = cardinality * (planes // 32)
        out = planes * self.expansion
        self.conv1 = nn.Conv3d(inplanes, mid, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, kernel_size=3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv3d(inplanes, out, kernel_size=1, stride=stride, bias=False),
                                            nn.BatchNorm3d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + residual)


class ResNeXt3DBackbone(nn.Module):
    """Hara's ResNeXt up to its pooled, flattened features (no fc)."""

    def __init__(self, layers: tuple[int, ...], cardinality: int, input_size: tuple[int, int, int],
                 sample_duration: int | None):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, kernel_size=7, stride=(1, 2, 2), padding=(3, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for i, (planes, blocks) in enumerate(zip((128, 256, 512, 1024), layers)):
            stride = 1 if i == 0 else 2
            stage = []
            for b in range(blocks):
                stage.append(Bottleneck(inplanes, planes, cardinality, stride if b == 0 else 1))
                inplanes = planes * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        t, h, w = _layer4_size(input_size)
        if sample_duration is None:
            self.avgpool, cells = nn.AdaptiveAvgPool3d(1), 1
        else:
            kernel = (math.ceil(sample_duration / 16), math.ceil(input_size[1] / 32), math.ceil(input_size[2] / 32))
            kernel = tuple(min(k, n) for k, n in zip(kernel, (t, h, w)))  # never larger than what is left
            self.avgpool = nn.AvgPool3d(kernel, stride=1)
            cells = (t - kernel[0] + 1) * (h - kernel[1] + 1) * (w - kernel[2] + 1)
        self.num_features = inplanes * cells
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def _layer4_size(input_size: tuple[int, int, int]) -> tuple[int, int, int]:
    """(T, H, W) after layer4: conv1 (stride 1 in time, 2 in space), the max pool and layers 2-4 halve."""
    t, h, w = input_size
    h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    for _ in range(4):  # the max pool, then layers 2, 3 and 4 (kernel 3, padding 1, stride 2)
        t, h, w = (t - 1) // 2 + 1, (h - 1) // 2 + 1, (w - 1) // 2 + 1
    return t, h, w


class ResNeXt3D(nn.Module):
    """Hara's 3D ResNeXt with a new head (3-channel stem: grey clips are repeated)."""

    cam_layer = "net.layer4"

    def __init__(self, net: ResNeXt3DBackbone, head: nn.Module):
        super().__init__()
        self.net, self.head, self.num_features = net, head, net.num_features

    @property
    def backbone(self) -> nn.Module:
        return self.net

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(match_channels(x, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@MODELS.register
def resnext3d(n_outputs: int, in_channels: int, pretrained: bool = False, input_size=(16, 112, 112),
              depth: int = 101, cardinality: int = 32, sample_duration: int | None = 16,
              dropout: float = 0.0) -> nn.Module:
    """Hara's 3D ResNeXt-`depth` (50, 101, 152). No hub has its weights: pass Hara's Kinetics checkpoint
    (resnext-101-kinetics.pth) as `weights:`."""
    if pretrained:
        raise ConfigError("resnext3d: no model hub serves Hara's 3D ResNeXt weights; set pretrained: false and "
                          "point weights: at its Kinetics checkpoint (resnext-101-kinetics.pth)")
    if depth not in DEPTHS:
        raise ValueError(f"depth {depth}: choose one of {sorted(DEPTHS)}")
    net = ResNeXt3DBackbone(DEPTHS[depth], cardinality, tuple(input_size), sample_duration)
    return ResNeXt3D(net, nn.Sequential(nn.Dropout(dropout), nn.Linear(net.num_features, n_outputs)))
