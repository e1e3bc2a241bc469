"""probe: a frozen encoder and a head fitted on its stored embeddings (train.probe). As a module it is the
encoder with its output layer made an identity (so it returns exactly the embedding that embed_videos takes:
the output layer's input) followed by the fitted head, so evaluation, Grad-CAM and predict run it like any
model."""

from __future__ import annotations

import torch
from torch import nn

from cineflow.models.builder import MODELS, build_model, frame_attention


class ProbeNet(nn.Module):
    """An encoder that ends in its embedding, and a head on it."""

    def __init__(self, encoder: nn.Module, head: nn.Module, num_features: int):
        super().__init__()
        self.encoder, self.head, self.num_features = encoder, head, num_features

    @property
    def backbone(self) -> nn.Module:
        return self.encoder

    @property
    def cam_layer(self) -> str:
        return "encoder." + self.encoder.cam_layer

    def cam_reshape(self, activations: torch.Tensor) -> torch.Tensor:
        return getattr(self.encoder, "cam_reshape", lambda a: a)(activations)

    def frame_attention(self):
        return frame_attention(self.encoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def probe_head(kind: str, width: int, n_outputs: int, hidden: int) -> nn.Module:
    """logistic and ridge: one Linear; mlp: Linear -> ReLU -> Linear (scikit-learn's MLP with one hidden layer)."""
    if kind == "mlp":
        return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, n_outputs))
    return nn.Sequential(nn.Linear(width, n_outputs))


@MODELS.register(family="probe")
def probe(n_outputs: int, in_channels: int, pretrained: bool = False, input_size=(16, 112, 112),
          encoder_arch: str = "tiny3d", encoder_params: dict | None = None, head: str = "logistic",
          hidden: int = 128) -> nn.Module:
    """A frozen encoder (any registered arch) with its output layer removed, and a probe head (config.expand_probes
    fills these from the encoders: entry; train.probe fits the head).

    Args:
        n_outputs: the head's outputs.
        in_channels: the encoder's stem channels.
        pretrained: the encoder's hub weights (the probe's fold checkpoints refer to the embedding job's copy).
        input_size: (frames, height, width).
        encoder_arch: the encoder's arch.
        encoder_params: its arch_params.
        head: logistic, ridge or mlp.
        hidden: the mlp's hidden width.
    """
    encoder = build_model(encoder_arch, 1, in_channels, pretrained, None, input_size, **(encoder_params or {}))
    last = [m for m in encoder.head.modules() if isinstance(m, nn.Linear)][-1]
    for module in encoder.head.modules():
        for name, child in module.named_children():
            if child is last:
                setattr(module, name, nn.Identity())
    if last in encoder.head.modules():  # the head is the Linear itself
        encoder.head = nn.Identity()
    return ProbeNet(encoder, probe_head(head, last.in_features, n_outputs, hidden), last.in_features)
