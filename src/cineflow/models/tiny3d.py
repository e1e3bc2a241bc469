"""tiny3d: a small 3D CNN for CPU demos and tests."""

from __future__ import annotations

import torch
from torch import nn

from cineflow.models.builder import MODELS, match_channels


class Tiny3D(nn.Module):
    """A small 3D CNN for CPU demos: temporal convolutions see motion; mean+std pooling over time
    keeps the amplitude of that motion, which is what ejection fraction is made of."""

    cam_layer = "features.3"

    def __init__(self, n_outputs: int, in_channels: int, width: int = 16, dropout: float = 0.2):
        super().__init__()
        self.in_channels = in_channels

        def block(cin, cout, stride):
            return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False),
                                 nn.BatchNorm3d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(block(in_channels, width, (1, 2, 2)), block(width, 2 * width, (1, 2, 2)),
                                      block(2 * width, 4 * width, (1, 2, 2)), block(4 * width, 4 * width, 1))
        self.num_features = 8 * width
        self.head = nn.Sequential(nn.LayerNorm(8 * width), nn.Dropout(dropout), nn.Linear(8 * width, n_outputs))

    @property
    def backbone(self) -> nn.Module:
        return self.features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(match_channels(x, self.in_channels)).mean(dim=(3, 4))  # [B, C, T]
        return torch.cat([f.mean(-1), f.std(-1, correction=0)], dim=1)  # 0 for 1-frame clips

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@MODELS.register
def tiny3d(n_outputs: int, in_channels: int, pretrained: bool = False, input_size=None, **params) -> nn.Module:
    if pretrained:
        raise ValueError("tiny3d has no pretrained weights; set pretrained: false")
    return Tiny3D(n_outputs, in_channels, **params)
