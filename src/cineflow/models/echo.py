"""Echo foundation encoders from their published checkpoints, as local files (`weights:`): EchoPrime's video
encoder and PanEcho's frame encoder with its temporal transformer. Each module mirrors the published key
layout, so a released checkpoint loads with every key matched; the new task head goes on the encoder's
embedding. Their input contracts (frames, frame stride, size, colour, normalisation) are the schema's
defaults for these archs (`x-arch-defaults`), so a config that names the arch preprocesses as the encoder
was trained. Licences: docs/models-and-training.md (both are for research use)."""

from __future__ import annotations

import math

import torch
from torch import nn

from cineflow.config import ConfigError
from cineflow.models.builder import MODELS, frames_to_clip, match_channels
from cineflow.models.torchvision_video import MVIT, VideoCNN, torchvision_net


def hub_refusal(arch: str, where: str) -> ConfigError:
    return ConfigError(f"{arch}: no model hub serves its weights here; download {where} and set "
                       "models.<name>.weights to the file (pretrained: false)")


@MODELS.register(family="echo")
def echoprime(n_outputs: int, in_channels: int, pretrained: bool = False, input_size=(16, 224, 224),
              dropout: float = 0.0, embedding: int = 512) -> nn.Module:
    """EchoPrime's video encoder (Vukadinovic et al. 2024): torchvision's MViT-v2-S whose head's Linear maps
    768 -> 512, the published checkpoint `echo_prime_encoder.pt` (a plain state dict of that net), then a new
    head on the 512-d embedding. Its contract: 16 frames every 2nd frame, 224 x 224, RGB, normalised with mean
    (29.11, 28.08, 29.10) and sd (47.99, 46.46, 47.20) on the 0-255 scale.

    Args:
        n_outputs: the output layer's size.
        in_channels: unused (a 3-channel stem; grey clips are repeated).
        pretrained: refused (no hub serves the weights); use `weights:`.
        input_size: (frames, height, width); the checkpoint's position tables fit 16 x 224 x 224 only.
        dropout: before the head's Linear.
        embedding: the encoder's output width (512 as published).
    """
    if pretrained:
        raise hub_refusal("echoprime", "echo_prime_encoder.pt from the EchoPrime release (github.com/echonet/"
                          "EchoPrime, model_data.zip)")
    net = torchvision_net("mvit_v2_s", False, input_size)
    net.head[-1] = nn.Linear(net.head[-1].in_features, embedding)
    return VideoCNN(net, nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding, n_outputs)), embedding, MVIT)


class SinusoidalTime(nn.Module):
    """PanEcho's fixed sine-cosine position encoding over frames (its `time_encoder`). Computed, not loaded:
    PanEcho drops `time_encoder.pe` from its checkpoint before loading, so any clip length works."""

    def __init__(self, dim: int, max_len: int):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2], pe[0, :, 1::2] = torch.sin(position * div), torch.cos(position * div)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, :x.size(1)]


class FrameTransformer(nn.Module):
    """PanEcho's video encoder under its own attribute names (`encoder.model` the torchvision ConvNeXt-T without
    its last Linear, `time_encoder`, `transformer`): frame features [B, T, 768] + time encoding through 4
    post-norm transformer layers (8 heads, feed-forward 768, ReLU, no dropout), averaged over time."""

    def __init__(self, clip_length: int, layers: int = 4, heads: int = 8):
        super().__init__()
        from torchvision.models import convnext_tiny

        self.encoder = nn.Module()
        self.encoder.model = convnext_tiny(weights=None)
        self.dim = self.encoder.model.classifier[-1].in_features
        self.encoder.model.classifier[-1] = nn.Identity()
        layer = nn.TransformerEncoderLayer(self.dim, heads, dim_feedforward=self.dim, dropout=0.0, activation="relu",
                                           batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.time_encoder = SinusoidalTime(self.dim, max(clip_length, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, T, H, W] -> [B, D]
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        embeddings = self.encoder.model(frames).view(b, t, self.dim)
        return self.transformer(self.time_encoder(embeddings)).mean(1)


class PanEcho(nn.Module):
    """PanEcho's encoder (`encoder`, its checkpoint's prefix) and a new head in place of its 39 task heads."""

    derived_keys = ("encoder.time_encoder.pe",)  # in the checkpoint, recomputed here (load_weights skips it)
    cam_layer = "encoder.encoder.model.features.7"

    def __init__(self, clip_length: int, n_outputs: int, dropout: float):
        super().__init__()
        self.encoder = FrameTransformer(clip_length)
        self.num_features = self.encoder.dim
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, n_outputs))

    @property
    def backbone(self) -> nn.Module:
        return self.encoder

    def cam_reshape(self, activations: torch.Tensor) -> torch.Tensor:
        return frames_to_clip(activations, self._frames)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._frames = x.shape[2]
        return self.encoder(match_channels(x, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@MODELS.register(family="echo")
def panecho(n_outputs: int, in_channels: int, pretrained: bool = False, input_size=(16, 224, 224),
            dropout: float = 0.25) -> nn.Module:
    """PanEcho (Holste et al. 2025): a torchvision ConvNeXt-T per frame, a 4-layer transformer over time, the
    768-d mean over frames, then a new head (Dropout 0.25 -> Linear, as PanEcho's task heads). The published
    `panecho.pt` ({'weights': state dict}) loads through `weights:`; its 39 task heads are left out. Its
    contract: 16 consecutive frames, 224 x 224, RGB, ImageNet normalisation.

    Args:
        n_outputs: the output layer's size.
        in_channels: unused (a 3-channel stem; grey clips are repeated).
        pretrained: refused (no hub serves the weights); use `weights:`.
        input_size: (frames, height, width); any size works (the time encoding is computed).
        dropout: before the head's Linear.
    """
    if pretrained:
        raise hub_refusal("panecho", "panecho.pt from the PanEcho release (github.com/CarDS-Yale/PanEcho, v1.0)")
    return PanEcho(int(input_size[0]), n_outputs, dropout)
