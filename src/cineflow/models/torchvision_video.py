"""torchvision's Kinetics video models, the whole zoo: the ResNets (r3d_18, mc3_18, r2plus1d_18), S3D, MViT
(v1-B, v2-S) and the Video Swin Transformers (swin3d_t/s/b), each with a new head.

The families name their output layer differently (`fc`, `classifier`, `head`); the builder replaces whichever
is last with an identity, so every net ends in its pooled features, and the new head goes on those. What
differs per family is kept beside each entry (`Family`): the layer Grad-CAM hooks and how its activations
become a [B, C, T, H, W] map (MViT's and Swin's are tokens; a CAM on the final norm of a class-token model
would get gradients on the class token only, so MViT's is the last block's input norm).
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

import torch
from torch import nn

from cineflow.config import ConfigError
from cineflow.models.builder import MODELS, match_channels, pretrained_error


@dataclass(frozen=True)
class Family:
    """What a torchvision video family needs beyond its builder.

    Args:
        name: the family (registry metadata).
        cam_layer: the Grad-CAM target below the net (`net.` is prepended; `{last}` is the last block's index).
        tokens: how the target's activations read: "grid" ([B, C, T, H, W] already), "cls" (MViT: [B, 1 + THW, C]
            with the grid size known only at run time), "channels_last" (Swin: [B, T, H, W, C]).
        fixed_size: the net's position encodings are built for one clip size (MViT): Kinetics weights need
            16 x 224 x 224, and an untrained net is built for the cache's size.
    """

    name: str
    cam_layer: str
    tokens: str = "grid"
    fixed_size: bool = False


RESNET, S3D = Family("resnet", "layer4"), Family("s3d", "features")
MVIT = Family("mvit", "blocks.{last}.norm1", tokens="cls", fixed_size=True)
SWIN = Family("swin", "norm", tokens="channels_last")
ZOO = {"r3d_18": RESNET, "mc3_18": RESNET, "r2plus1d_18": RESNET, "s3d": S3D, "mvit_v1_b": MVIT,
       "mvit_v2_s": MVIT, "swin3d_t": SWIN, "swin3d_s": SWIN, "swin3d_b": SWIN}
KINETICS_SIZE = (16, 224, 224)


def torchvision_net(name: str, pretrained: bool, input_size) -> nn.Module:
    """torchvision's `name`, with Kinetics weights where `pretrained` (the offline error names both options),
    at the clip size it is built for where the family fixes one."""
    from torchvision.models import video

    family, size = ZOO[name], tuple(input_size or KINETICS_SIZE)
    if family.fixed_size and size != KINETICS_SIZE:
        if pretrained:
            raise ConfigError(f"{name} with Kinetics weights takes 16 x 224 x 224 clips (clip_length 16, size 224), "
                              f"not {size[0]} x {size[1]} x {size[2]}; set those, or pretrained: false")
        return mvit_at(name, size)
    try:
        return getattr(video, name)(weights="DEFAULT" if pretrained else None)
    except Exception as err:
        raise pretrained_error(name, err) from err


_SIZED = threading.Lock()


def mvit_at(name: str, size: tuple[int, int, int]) -> nn.Module:
    """torchvision's MViT `name`, untrained, built for (T, H, W) clips. Its builders pass 16 x 224 x 224 to the
    module's own constructor helper whatever they are given, so the helper is wrapped for the one call (under a
    lock) to pass this size instead: the same blocks, with position tables for this size."""
    from torchvision.models import video

    module = sys.modules[video.mvit_v2_s.__module__]
    original = module._mvit

    def sized(**kwargs):
        return original(**{**kwargs, "temporal_size": size[0], "spatial_size": tuple(size[1:])})

    with _SIZED:
        module._mvit = sized
        try:
            return getattr(video, name)(weights=None)
        finally:
            module._mvit = original


def drop_output_layer(net: nn.Module) -> int:
    """Replace the net's last Linear or Conv3d (its Kinetics classifier, whatever the family calls it) with an
    identity, in place; returns its input width (the pooled features' size)."""
    name, last = [(n, m) for n, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv3d))][-1]
    parent, _, attr = name.rpartition(".")
    holder = net.get_submodule(parent) if parent else net
    if isinstance(holder, nn.Sequential):
        holder[int(attr)] = nn.Identity()
    else:
        setattr(holder, attr, nn.Identity())
    return last.in_features if isinstance(last, nn.Linear) else last.in_channels


def _torchvision_video(name: str):
    def build(n_outputs: int, in_channels: int, pretrained: bool = False, input_size=None,
              dropout: float = 0.0) -> nn.Module:
        net = torchvision_net(name, pretrained, input_size)
        if name == "s3d":  # its fixed (2, 7, 7) pooling fits 16 x 224 x 224 only; global pooling is the same there
            net.avgpool = nn.AdaptiveAvgPool3d(1)
        width = drop_output_layer(net)
        return VideoCNN(net, nn.Sequential(nn.Dropout(dropout), nn.Linear(width, n_outputs)), width, ZOO[name])

    build.__doc__ = f"""torchvision's {name} (Kinetics-400 weights where pretrained) with a new head.

    Args:
        n_outputs: the output layer's size.
        in_channels: unused (a 3-channel stem; grey clips are repeated).
        pretrained: torchvision's Kinetics weights (needs the network or torch's hub cache).
        input_size: (frames, height, width) of the clips.
        dropout: before the head's Linear.
    """
    return build


class VideoCNN(nn.Module):
    """A torchvision video net (3-channel stem: grey clips are repeated) that ends in its pooled features, and
    a new head. `family` says where Grad-CAM looks and how its activations become a clip-shaped map."""

    def __init__(self, net: nn.Module, head: nn.Module, num_features: int, family: Family = RESNET):
        super().__init__()
        self.net, self.head, self.num_features, self.family = net, head, num_features, family
        self._grid: tuple[int, int, int] | None = None
        if family.tokens == "cls":  # the token grid of the CAM layer's block, known only when it runs
            self.net.blocks[-1].register_forward_pre_hook(self._keep_grid)

    def _keep_grid(self, module: nn.Module, args: tuple) -> None:
        self._grid = tuple(args[1])

    @property
    def backbone(self) -> nn.Module:
        return self.net

    @property
    def cam_layer(self) -> str:
        last = len(self.net.blocks) - 1 if hasattr(self.net, "blocks") else None
        return "net." + self.family.cam_layer.format(last=last)

    def cam_reshape(self, activations: torch.Tensor) -> torch.Tensor:
        """The CAM layer's activations as [B, C, T, H, W]."""
        if self.family.tokens == "cls":
            b, _, c = activations.shape
            return activations[:, 1:].transpose(1, 2).reshape(b, c, *self._grid)
        if self.family.tokens == "channels_last":
            return activations.permute(0, 4, 1, 2, 3)
        return activations

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(match_channels(x, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


for _name in ZOO:
    MODELS.register(_torchvision_video(_name), name=_name, family=ZOO[_name].name)
