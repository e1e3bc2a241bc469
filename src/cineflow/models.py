"""Architectures in a registry (as timm does): every entry maps [B, C, T, H, W] clips to outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .registry import registrar

MODELS: dict[str, Callable[..., nn.Module]] = {}
register_model = registrar(MODELS)


def build_model(arch: str, n_outputs: int, in_channels: int, pretrained: bool = False, weights: str | None = None,
                **params) -> nn.Module:
    """Instantiate a registered architecture; `weights` is a local state-dict file (offline use)."""
    if arch not in MODELS:
        raise KeyError(f"unknown model arch '{arch}'; registered: {sorted(MODELS)}")
    model = MODELS[arch](n_outputs=n_outputs, in_channels=in_channels, pretrained=pretrained and not weights,
                         **params)
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} not found (model arch '{arch}')")
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = model.load_state_dict(state.get("state_dict", state), strict=False)
        if len(missing) == len(model.state_dict()):
            raise ValueError(f"weights file {path} matches none of the parameters of '{arch}'")
    return model


def _pretrained_error(arch: str, err: Exception) -> RuntimeError:
    return RuntimeError(
        f"could not load pretrained weights for '{arch}' ({type(err).__name__}: {err}). Without network "
        "access either set `pretrained: false` or point `weights:` at a local state-dict file.")


def get_module(model: nn.Module, dotted: str) -> nn.Module:
    module = model
    for part in dotted.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


class Tiny3D(nn.Module):
    """A small 3D CNN for CPU demos: temporal convolutions see motion; mean+std pooling over time
    keeps the amplitude of that motion, which is what ejection fraction is made of."""

    cam_layer = "features.3"

    def __init__(self, n_outputs: int, in_channels: int, width: int = 16, dropout: float = 0.2):
        super().__init__()

        def block(cin, cout, stride):
            return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False),
                                 nn.BatchNorm3d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(block(in_channels, width, (1, 2, 2)), block(width, 2 * width, (1, 2, 2)),
                                      block(2 * width, 4 * width, (1, 2, 2)), block(4 * width, 4 * width, 1))
        self.head = nn.Sequential(nn.LayerNorm(8 * width), nn.Dropout(dropout), nn.Linear(8 * width, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x).mean(dim=(3, 4))  # [B, C, T]
        return self.head(torch.cat([f.mean(-1), f.std(-1, correction=0)], dim=1))  # 0 for 1-frame clips


@register_model("tiny3d")
def tiny3d(n_outputs: int, in_channels: int, pretrained: bool = False, **params) -> nn.Module:
    if pretrained:
        raise ValueError("tiny3d has no pretrained weights; set pretrained: false")
    return Tiny3D(n_outputs, in_channels, **params)


class TemporalHead(nn.Module):
    """Pools per-frame features over time: mean, attention, bilstm or bilstm_attention."""

    KINDS = ("mean", "attention", "bilstm", "bilstm_attention")

    def __init__(self, kind: str, dim: int, n_outputs: int, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"unknown temporal_head '{kind}'; choose one of {self.KINDS}")
        self.kind = kind
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True) if "bilstm" in kind else None
        out_dim = 2 * hidden if self.lstm is not None else dim
        self.attention = nn.Linear(out_dim, 1) if "attention" in kind else None
        self.classifier = nn.Sequential(nn.LayerNorm(out_dim), nn.Dropout(dropout), nn.Linear(out_dim, n_outputs))
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

    def __init__(self, backbone: nn.Module, head: TemporalHead, repeat_grey: bool):
        super().__init__()
        self.backbone, self.head, self.repeat_grey = backbone, head, repeat_grey

    @property
    def cam_layer(self) -> str:
        return "backbone." + _last_conv_name(self.backbone)

    def cam_reshape(self, activations: torch.Tensor) -> torch.Tensor:
        """[B*T, C, h, w] layer output -> [B, C, T, h, w], so the CAM is scaled over the whole clip."""
        bt, c, h, w = activations.shape
        return activations.view(bt // self._frames, self._frames, c, h, w).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        self._frames = t
        if self.repeat_grey and c == 1:
            x = x.expand(b, 3, t, h, w)
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, -1, h, w)
        return self.head(self.backbone(frames).view(b, t, -1))


@register_model("frame2d")
def frame2d(n_outputs: int, in_channels: int, pretrained: bool = False, backbone: str = "resnet18",
            temporal_head: str = "mean", hidden: int = 128, dropout: float = 0.3) -> nn.Module:
    import timm

    try:  # grey input is repeated to 3 channels for pretrained backbones
        net = timm.create_model(backbone, pretrained=pretrained, num_classes=0,
                                in_chans=3 if pretrained else in_channels)
    except RuntimeError as err:
        raise _pretrained_error(backbone, err) from err
    except Exception as err:
        if pretrained:
            raise _pretrained_error(backbone, err) from err
        raise
    return FrameModel(net, TemporalHead(temporal_head, net.num_features, n_outputs, hidden, dropout),
                      repeat_grey=pretrained)


def _torchvision_video(name: str):
    def build(n_outputs: int, in_channels: int, pretrained: bool = False, dropout: float = 0.0) -> nn.Module:
        from torchvision.models import video

        try:
            net = getattr(video, name)(weights="DEFAULT" if pretrained else None)
        except Exception as err:
            raise _pretrained_error(name, err) from err
        net.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(net.fc.in_features, n_outputs))
        return VideoCNN(net)

    return build


class VideoCNN(nn.Module):
    """torchvision video ResNet; grey clips are repeated to 3 channels."""

    cam_layer = "net.layer4"

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1, -1)
        return self.net(x)


for _name in ("r2plus1d_18", "r3d_18", "mc3_18"):
    register_model(_name)(_torchvision_video(_name))


def _last_conv_name(module: nn.Module) -> str:
    name = None
    for n, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            name = n
    if name is None:
        raise ValueError("backbone has no Conv2d layer; set gradcam.target_layer")
    return name
