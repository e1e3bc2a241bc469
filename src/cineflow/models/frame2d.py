"""frame2d and image2d: a timm image backbone per frame, then a temporal head (mean, attention, LSTM) over the
frames; image2d is frame2d on one-frame clips (X-rays)."""

from __future__ import annotations

import torch
from torch import nn

from cineflow.models.builder import MODELS, frames_to_clip, match_channels, pretrained_error


class TemporalHead(nn.Module):
    """Pools per-frame features over time (mean, attention, bilstm or bilstm_attention), then a
    LayerNorm-stabilised classifier: `linear` (one layer) or `mlp` (Linear -> ReLU -> Dropout -> Linear).
    `dropout` is one rate, or two: before and after the mlp's hidden layer (the Lung X-ray study's 0.3, 0.25)."""

    KINDS = ("mean", "attention", "bilstm", "bilstm_attention")

    def __init__(self, kind: str, dim: int, n_outputs: int, hidden: int = 128, dropout: float | list = 0.3,
                 classifier: str = "linear"):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"unknown temporal_head '{kind}'; choose one of {self.KINDS}")
        if classifier not in ("linear", "mlp"):
            raise ValueError(f"unknown classifier '{classifier}'; choose linear or mlp")
        self.kind = kind
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True) if "bilstm" in kind else None
        out_dim = 2 * hidden if self.lstm is not None else dim
        self.attention = nn.Linear(out_dim, 1) if "attention" in kind else None
        first, second = (dropout, dropout) if isinstance(dropout, (int, float)) else dropout
        layers = [nn.LayerNorm(out_dim), nn.Dropout(first)]
        layers += ([nn.Linear(out_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(second), nn.Linear(hidden, n_outputs)]
                   if classifier == "mlp" else [nn.Linear(out_dim, n_outputs)])
        self.classifier = nn.Sequential(*layers)
        self.last_weights: torch.Tensor | None = None  # [B, T], for the report

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # [B, T, D]
        if self.lstm is not None:
            feats, _ = self.lstm(feats)
        if self.attention is not None:
            weights = torch.softmax(self.attention(feats).squeeze(-1), dim=1)
            self.last_weights = weights.detach()
            pooled = (weights.unsqueeze(-1) * feats).sum(1)
        else:
            pooled = feats.mean(1)
        return self.classifier(pooled)

class FrameModel(nn.Module):
    """A timm 2D backbone applied to every frame as one batch, then a temporal head."""

    def __init__(self, backbone: nn.Module, head: TemporalHead, in_channels: int):
        super().__init__()
        self.backbone, self.head, self.in_channels = backbone, head, in_channels

    @property
    def cam_layer(self) -> str:
        """A vision transformer's last block's input norm (its patch tokens get gradients through attention;
        the final norm's would only where the pooling reads), else the last Conv2d."""
        if is_vit(self.backbone):
            return f"backbone.blocks.{len(self.backbone.blocks) - 1}.norm1"
        return "backbone." + _last_conv_name(self.backbone)

    def cam_reshape(self, activations: torch.Tensor) -> torch.Tensor:
        """The CAM layer's output as [B, C, T, h, w]: a CNN's [B*T, C, h, w], or a vision transformer's
        [B*T, prefix + h*w, C] tokens (class and register tokens dropped, the patches put back on their grid)."""
        if activations.dim() == 3:
            grid = self.backbone.patch_embed.dynamic_feat_size(self._size)
            activations = activations[:, self.backbone.num_prefix_tokens:].transpose(1, 2).unflatten(2, grid)
        return frames_to_clip(activations, self._frames)

    def frame_attention(self):
        weights = self.head.last_weights
        return None if weights is None or self.head.attention is None else weights[0].cpu().numpy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = match_channels(x, self.in_channels)
        b, c, t, h, w = x.shape
        self._frames, self._size = t, (h, w)
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        return self.head(self.backbone(frames).view(b, t, -1))


@MODELS.register
def frame2d(n_outputs: int, in_channels: int, pretrained: bool = False, input_size=None, backbone: str = "resnet18",
            temporal_head: str = "mean", hidden: int = 128, dropout: float | list = 0.3, classifier: str = "linear",
            backbone_params: dict | None = None) -> nn.Module:
    """A timm 2D backbone on every frame, then a temporal head over the frame features.

    Args:
        n_outputs: the output layer's size.
        in_channels: the stem's channels.
        pretrained: timm's pretrained weights.
        input_size: (frames, height, width) of the clips: a backbone with a fixed input size (ViT, DINOv2, SigLIP)
            is built for the clips' height and width (timm resamples pretrained position embeddings to it).
        backbone: a timm model name.
        temporal_head: mean, attention, bilstm or bilstm_attention over the frame features.
        hidden: the head's hidden width.
        dropout: the head's dropout, or [before, after] the mlp's hidden layer.
        classifier: linear, or mlp.
        backbone_params: more keyword arguments of timm.create_model (e.g. drop_path_rate).
    """
    net = timm_backbone(backbone, pretrained, in_channels, input_size, backbone_params or {})
    return FrameModel(net, TemporalHead(temporal_head, net.num_features, n_outputs, hidden, dropout, classifier),
                      in_channels)


def timm_backbone(name: str, pretrained: bool, in_channels: int, input_size, params: dict) -> nn.Module:
    """timm's `name` without its classifier, at the clips' frame size where the family takes one (`img_size`:
    transformers; CNNs take any size and have no such argument)."""
    import timm

    kwargs = {"pretrained": pretrained, "num_classes": 0, "in_chans": in_channels, **params}
    try:
        if input_size is not None and "img_size" not in params:
            try:
                return timm.create_model(name, img_size=tuple(input_size[1:]), **kwargs)
            except TypeError as err:
                if "img_size" not in str(err):
                    raise
        return timm.create_model(name, **kwargs)
    except Exception as err:
        if pretrained:
            raise pretrained_error(name, err) from err
        raise


@MODELS.register
def image2d(n_outputs: int, in_channels: int, pretrained: bool = False, input_size=None,
            backbone: str = "convnextv2_atto", hidden: int = 256, dropout: float | list = 0.3) -> nn.Module:
    """A timm image model (ConvNeXt-V2, EfficientNet-V2, RegNetY, ...) for 1-frame clips (X-rays) with the
    custom head: pool -> LayerNorm -> Dropout -> Linear -> ReLU -> Dropout -> Linear. Longer clips are
    averaged over frames.

    Args: as for `frame2d` (input_size unused: any image size works).
    """
    return frame2d(n_outputs, in_channels, pretrained, input_size, backbone=backbone, temporal_head="mean",
                   hidden=hidden, dropout=dropout, classifier="mlp")

def is_vit(backbone: nn.Module) -> bool:
    """A timm vision transformer (ViT, DeiT, DINOv2, SigLIP, EVA): patch tokens through a list of blocks."""
    return all(hasattr(backbone, a) for a in ("patch_embed", "blocks", "num_prefix_tokens"))


def _last_conv_name(module: nn.Module) -> str:
    name = None
    for n, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            name = n
    if name is None:
        raise ValueError("backbone has no Conv2d layer; set gradcam.target_layer")
    return name
