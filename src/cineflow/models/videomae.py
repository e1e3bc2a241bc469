"""videomae: the Hugging Face VideoMAE encoder with attention pooling and an MLP head (the EF study's)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cineflow.models.builder import MODELS, match_channels, pretrained_error


class VideoMAE(nn.Module):
    """Hugging Face VideoMAE encoder, attention pooling over its tokens and an MLP head, as in the EF study:
    pooling scores dim -> pool_hidden -> 1 (tanh), or dim -> 1 without pool_hidden; head LayerNorm ->
    Dropout -> Linear -> GELU -> Dropout -> [Linear -> GELU ...] -> Linear, one Linear per width in
    `hidden` (the study: 768 -> 256 -> 64 -> 1)."""

    def __init__(self, net: nn.Module, n_outputs: int, hidden: int | list[int], dropout: float,
                 pool_hidden: int | None = None):
        super().__init__()
        dim = net.config.hidden_size
        self.backbone, self.in_channels, self.num_features = net, net.config.num_channels, dim
        self.pool = (nn.Linear(dim, 1) if not pool_hidden else
                     nn.Sequential(nn.Linear(dim, pool_hidden), nn.Tanh(), nn.Linear(pool_hidden, 1)))
        layers, width = [nn.LayerNorm(dim), nn.Dropout(dropout)], dim
        for i, size in enumerate([hidden] if isinstance(hidden, int) else hidden):
            layers += [nn.Linear(width, size), nn.GELU()] + ([nn.Dropout(dropout)] if i == 0 else [])
            width = size
        self.head = nn.Sequential(*layers, nn.Linear(width, n_outputs))
        self.last_weights: torch.Tensor | None = None  # [B, tokens]

    @property
    def cam_layer(self) -> str:
        return f"backbone.encoder.layer.{len(self.backbone.encoder.layer) - 1}.layernorm_before"

    def token_grid(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        c = self.backbone.config
        return t // c.tubelet_size, h // c.patch_size, w // c.patch_size

    def cam_reshape(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, N, D] tokens -> [B, D, T', h', w'] (the tubelet grid), so Grad-CAM treats them like a 3D CNN."""
        b, n, d = tokens.shape
        return tokens.transpose(1, 2).reshape(b, d, *self._grid)

    def frame_attention(self):
        """Token weights summed over space per tubelet, spread evenly over the tubelet's frames."""
        if self.last_weights is None:
            return None
        t, h, w = self._grid
        per_tubelet = self.last_weights[0].view(t, h * w).sum(-1).cpu().numpy()
        size = self.backbone.config.tubelet_size
        return np.repeat(per_tubelet / size, size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The attention-pooled token features [B, D]."""
        x = match_channels(x, self.in_channels)
        self._grid = self.token_grid(*x.shape[2:])
        tokens = self.backbone(pixel_values=x.transpose(1, 2)).last_hidden_state  # [B, N, D]
        weights = torch.softmax(self.pool(tokens).squeeze(-1), dim=1)
        self.last_weights = weights.detach()
        return (weights.unsqueeze(-1) * tokens).sum(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@MODELS.register
def videomae(n_outputs: int, in_channels: int, pretrained: bool = False, input_size=(16, 224, 224),
             checkpoint: str = "MCG-NJU/videomae-base", hidden: int | list[int] = 256, dropout: float = 0.3,
             pool_hidden: int | None = None, **encoder) -> nn.Module:
    """`encoder` overrides the VideoMAE config (hidden_size, num_hidden_layers, num_attention_heads,
    intermediate_size, patch_size, tubelet_size); frames and image size follow the clips. Position
    embeddings are sinusoidal, so pretrained weights work at other clip sizes.

    Args:
        n_outputs: the output layer's size.
        in_channels: the clips' channels (3 where pretrained).
        pretrained: load `checkpoint` from the Hugging Face hub (or its cache).
        input_size: (frames, height, width) of the cached clips.
        checkpoint: the hub checkpoint.
        hidden: the head's hidden width, or widths ([256, 64] in the EF study).
        dropout: the head's dropout.
        pool_hidden: the attention pooling's hidden width (128 in the EF study); None scores tokens linearly.
        **encoder: VideoMAE config overrides.
    """
    from transformers import VideoMAEConfig, VideoMAEModel

    t, h, w = input_size
    geometry = dict(num_frames=t, image_size=h, num_channels=in_channels, use_mean_pooling=False)
    if h != w:
        raise ValueError(f"videomae needs square frames, the cache gives {h}x{w}")
    try:
        if pretrained:
            net = VideoMAEModel.from_pretrained(checkpoint, **geometry, **encoder)
        else:
            net = VideoMAEModel(VideoMAEConfig(**geometry, **encoder))
    except OSError as err:
        raise pretrained_error(checkpoint, err) from err
    c = net.config
    if t % c.tubelet_size or h % c.patch_size:
        raise ValueError(f"videomae: clip_length {t} must be a multiple of tubelet_size {c.tubelet_size} and the "
                         f"frame size {h} a multiple of patch_size {c.patch_size}")
    return VideoMAE(net, n_outputs, hidden, dropout, pool_hidden)
