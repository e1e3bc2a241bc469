"""Building an architecture by name: the MODELS registry (each family registers itself in a module of its own,
as timm does), the stem's channels, the bidirectional wrapper, and what training and Grad-CAM ask of every
model: its backbone blocks, its output bias, a named submodule, its temporal attention.

Every entry maps [B, C, T, H, W] clips to outputs and has a `backbone` (frozen in stage 1 of two-stage
fine-tuning) and a `head` whose last Linear is the output layer. Builders take (n_outputs, in_channels,
pretrained, input_size=(T, H, W), **arch_params).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from cineflow.config import ConfigError, schema_default
from cineflow.models.adapters import add_adapter
from cineflow.models.weights import load_weights
from cineflow.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model architecture", "models.<name>.arch")


def stem_channels(in_channels: int, pretrained: bool, weights: str | None) -> int:
    """Pretrained backbones (hub or a local file) have a 3-channel stem; grey clips are repeated to fit it."""
    return 3 if pretrained or weights else in_channels


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    return x.expand(-1, channels, -1, -1, -1) if x.shape[1] == 1 and channels == 3 else x


def build_model(arch: str, n_outputs: int, in_channels: int, pretrained: bool = False, weights: str | None = None,
                input_size: tuple[int, int, int] = (16, 112, 112), weights_strict: bool = True,
                fuse_directions: str | None = None, fuse_params: dict | None = None, adapter: dict | None = None,
                **params) -> nn.Module:
    """Instantiate a registered architecture; `weights` is a local state-dict file (offline use).

    `in_channels` is the stem's channel count (see stem_channels); `input_size` is (frames, height, width).

    Args:
        arch: a MODELS name.
        n_outputs: the output layer's size.
        in_channels: the stem's channels.
        pretrained: load the hub's pretrained weights (needs the network or its cache).
        weights: a local state-dict file to start from instead (load_weights).
        input_size: (frames, height, width) of the clips.
        weights_strict: stop when `weights` leaves backbone parameters unset or has keys that fit nowhere.
        fuse_directions: None, or mean / concat / concat_mlp: the model sees both reads of every clip (Bidirectional).
        fuse_params: concat_mlp's sizes (latent, hidden, dropout).
        adapter: low-rank adapters on the loaded backbone (models.adapters.add_adapter), or None.
        **params: the architecture's arch_params.
    """
    build = MODELS.get(arch)
    try:
        model = build(n_outputs=n_outputs, in_channels=in_channels, pretrained=pretrained and not weights,
                      input_size=tuple(input_size), **params)
    except TypeError as err:  # an arch_params key the architecture does not take
        raise ConfigError(f"models.<name>.arch_params: '{arch}' says {err}; check arch_params") from None
    if weights:
        load_weights(model, weights, strict=weights_strict)
    if adapter:
        add_adapter(model, adapter)
    if not fuse_directions:
        return model
    return Bidirectional(model, fuse_directions, **(fuse_params or schema_default("models", "*", "fuse_params")))

class Bidirectional(nn.Module):
    """Both reads of every clip through the same model, fused (the Stall Catchers study's forward and backward
    40-frame reads). A clip arrives as [B, C, 2T, H, W], the forward read then the backward one (data.sampling
    puts them side by side, so a sampler can give the backward read a window of its own).

    - `mean` averages the two outputs;
    - `concat` puts the two pooled feature vectors side by side, projects them back to the backbone's width
      with a linear layer, then applies the model's head;
    - `concat_mlp` is the notebook's own: each read's pooled features through AlphaDropout, a Linear to
      `latent` and BatchNorm (momentum 0.01), the two side by side through the notebook's MLP
      (FusionMLP), in place of the model's head.

    The backbone stays the wrapped model's, so staged training, output bias and Grad-CAM work as for the
    model alone."""

    def __init__(self, model: nn.Module, mode: str, latent: int, hidden: int, dropout: float):
        super().__init__()
        if mode not in ("mean", "concat", "concat_mlp"):
            raise ValueError(f"unknown fuse_directions '{mode}'; choose mean, concat or concat_mlp")
        if mode != "mean" and not hasattr(model, "forward_features"):
            raise ConfigError(f"fuse_directions: {mode} needs a clip model with pooled features (3D CNNs, "
                              f"videomae), not {type(model).__name__}; use mean")
        self.model, self.mode = model, mode
        self.fuse = None
        if mode == "concat":
            self.fuse = nn.Linear(2 * model.num_features, model.num_features)
        elif mode == "concat_mlp":
            outputs = [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1].out_features
            self.fuse = FusionMLP(model.num_features, outputs, latent, hidden, dropout)

    @property
    def backbone(self) -> nn.Module:
        return self.model.backbone

    @property
    def head(self) -> nn.Module:
        return self.fuse if self.mode == "concat_mlp" else self.model.head

    @property
    def cam_layer(self) -> str:
        return "model." + self.model.cam_layer

    def cam_reshape(self, activations: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, "cam_reshape", lambda a: a)(activations)

    def frame_attention(self):
        """The backward read's weights (the last pass), put back into forward time."""
        weights = frame_attention(self.model)
        return None if weights is None else weights[::-1].copy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        forward, backward = x.chunk(2, dim=2)  # [B, C, 2T, H, W]: the two reads
        if self.mode == "mean":
            return (self.model(forward) + self.model(backward)) / 2
        features = [self.model.forward_features(forward), self.model.forward_features(backward)]
        if self.mode == "concat_mlp":
            return self.fuse(*features)
        return self.model.forward_head(self.fuse(torch.cat(features, dim=1)))


class FusionMLP(nn.Module):
    """The Stall Catchers notebook's fusion head (its Encoder.final and ConvLSTM.output_layers_new; the schema's
    fuse_params default to its sizes: latent 512, hidden 1024 -> 512 -> 128 -> 32 -> 8, AlphaDropout 0.4). The notebook
    ends in a Sigmoid; here the task's loss reads the logits (losses' metadata)."""

    def __init__(self, features: int, outputs: int, latent: int, hidden: int, dropout: float):
        super().__init__()
        self.project = nn.Sequential(nn.AlphaDropout(dropout), nn.Linear(features, latent),
                                     nn.BatchNorm1d(latent, momentum=0.01))
        sizes = [hidden, hidden // 2, hidden // 8, hidden // 32, hidden // 128]
        self.layers = nn.Sequential(
            nn.Linear(2 * latent, sizes[0]), nn.BatchNorm1d(sizes[0], momentum=0.01), nn.ReLU(),
            nn.Linear(sizes[0], sizes[1]), nn.ReLU(), nn.AlphaDropout(dropout),
            nn.Linear(sizes[1], sizes[2]), nn.ReLU(),
            nn.Linear(sizes[2], sizes[3]), nn.ReLU(),
            nn.Linear(sizes[3], sizes[4]), nn.BatchNorm1d(sizes[4], momentum=0.01), nn.ReLU(), nn.AlphaDropout(dropout),
            nn.Linear(sizes[4], outputs))

    def forward(self, forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([self.project(forward), self.project(backward)], dim=1))


def init_output_bias(model: nn.Module, value: float) -> None:
    """Regression starts at the target mean (as EchoNet-Dynamic does): the output layer's bias."""
    last = [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.bias.fill_(value)


def backbone_blocks(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's stages in forward order, for progressive unfreezing from the last one.

    Top-level children with parameters; a Sequential/ModuleList (timm's `blocks`, ResNet layers,
    a transformer's layer list) counts as its children, and a wrapper with one child is looked through."""
    blocks = []
    for child in backbone.children():
        while not isinstance(child, (nn.Sequential, nn.ModuleList)) and len(_with_params(child.children())) == 1:
            child = _with_params(child.children())[0]
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            blocks += _with_params(child.children())
        elif _with_params([child]):
            blocks.append(child)
    return blocks


def _with_params(modules) -> list[nn.Module]:
    return [m for m in modules if any(True for _ in m.parameters())]


def pretrained_error(arch: str, err: Exception) -> RuntimeError:
    return RuntimeError(
        f"could not load pretrained weights for '{arch}' ({type(err).__name__}: {err}). Without network "
        "access either set `pretrained: false` or point `weights:` at a local state-dict file.")


def frames_to_clip(activations: torch.Tensor, frames: int) -> torch.Tensor:
    """A frame model's [B*T, C, h, w] activations as [B, C, T, h, w], so a CAM is scaled over the whole clip."""
    bt, c, h, w = activations.shape
    return activations.view(bt // frames, frames, c, h, w).transpose(1, 2)


def get_module(model: nn.Module, dotted: str) -> nn.Module:
    module = model
    for part in dotted.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module

def frame_attention(model: nn.Module) -> "np.ndarray | None":
    """[T] attention weight of each frame in the last forward pass (first clip), for models that pool
    over time with attention; None for the others."""
    method = getattr(model, "frame_attention", None)
    return None if method is None else method()
