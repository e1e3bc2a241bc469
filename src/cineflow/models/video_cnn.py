"""torchvision's Kinetics video ResNets (r2plus1d_18, r3d_18, mc3_18) with a new head."""

from __future__ import annotations

import torch
from torch import nn

from cineflow.models.builder import MODELS, match_channels, pretrained_error


def _torchvision_video(name: str):
    def build(n_outputs: int, in_channels: int, pretrained: bool = False, input_size=None,
              dropout: float = 0.0) -> nn.Module:
        from torchvision.models import video

        try:
            net = getattr(video, name)(weights="DEFAULT" if pretrained else None)
        except Exception as err:
            raise pretrained_error(name, err) from err
        width = net.fc.in_features
        head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, n_outputs))
        net.fc = nn.Identity()
        return VideoCNN(net, head, width)

    return build


class VideoCNN(nn.Module):
    """torchvision video ResNet (3-channel stem: grey clips are repeated) with a new head."""

    cam_layer = "net.layer4"

    def __init__(self, net: nn.Module, head: nn.Module, num_features: int):
        super().__init__()
        self.net, self.head, self.num_features = net, head, num_features

    @property
    def backbone(self) -> nn.Module:
        return self.net

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(match_channels(x, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


for _name in ("r2plus1d_18", "r3d_18", "mc3_18"):
    MODELS.register(_torchvision_video(_name), name=_name)
