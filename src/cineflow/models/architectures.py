"""Architectures in a registry (as timm does): every entry maps [B, C, T, H, W] clips to outputs.

Every model has a `backbone` (frozen in stage 1 of two-stage fine-tuning) and a `head` whose last
Linear is the output layer. Builders take (n_outputs, in_channels, pretrained, input_size=(T, H, W),
**arch_params).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from cineflow.config import ConfigError
from cineflow.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model architecture", "models.<name>.arch")


def stem_channels(in_channels: int, pretrained: bool, weights: str | None) -> int:
    """Pretrained backbones (hub or a local file) have a 3-channel stem; grey clips are repeated to fit it."""
    return 3 if pretrained or weights else in_channels


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    return x.expand(-1, channels, -1, -1, -1) if x.shape[1] == 1 and channels == 3 else x


def build_model(arch: str, n_outputs: int, in_channels: int, pretrained: bool = False, weights: str | None = None,
                input_size: tuple[int, int, int] = (16, 112, 112), weights_strict: bool = True,
                fuse_directions: str | None = None, **params) -> nn.Module:
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
        fuse_directions: None, or mean / concat: the model sees every clip forward and backward (Bidirectional).
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
    return Bidirectional(model, fuse_directions) if fuse_directions else model


CLASSIFIER_KEYS = ("fc.", "head.", "heads.", "classifier.", "last_linear.")  # other models' output layers


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> dict:
    """Load a state-dict file into `model`: a cineflow checkpoint, or a plain torchvision / timm / Hugging
    Face one whose keys are mapped onto the model's backbone.

    The mapping is the one that fits the most tensors (same name and shape) among: the keys as they
    are; with the backbone's attribute prepended (`fc`-less torchvision `stem.0.weight` ->
    `net.stem.0.weight`); with their first component dropped (`videomae.encoder...`, `module.`) and
    the backbone's prepended. The file's own classifier (fc, head, classifier) does not fit the new
    head and is left out. Returns {"loaded", "missing", "unexpected"} key lists.

    Args:
        model: a freshly built model.
        path: the file; a dict with the weights under `state_dict` or `model` works too.
        strict: raise when backbone parameters stay unset or keys fit nowhere, listing both.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found (models.<name>.weights)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    target = model.state_dict()
    backbone = next((f"{n}." for n, m in model.named_children() if m is model.backbone), "")

    def mapped(strip: bool, prefix: str) -> dict:
        out = {}
        for key, value in state.items():
            name = prefix + (key.split(".", 1)[1] if strip and "." in key else key)
            if name in target and target[name].shape == value.shape:
                out[name] = (key, value)
        return out

    best = max((mapped(strip, prefix) for strip in (False, True) for prefix in ("", backbone)), key=len)
    if not best:
        raise ValueError(f"weights file {path}: none of its {len(state)} tensors fits the model "
                         f"(its keys start {sorted(state)[:3]}; the model's {sorted(target)[:3]})")
    used = {source for source, _ in best.values()}
    missing = [k for k in target if k.startswith(backbone) and k not in best  # the head may start fresh
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in used and not k.startswith(CLASSIFIER_KEYS)
                  and not k.split(".", 1)[-1].startswith(CLASSIFIER_KEYS)]
    if strict and (missing or unexpected):
        raise ValueError(f"weights file {path} matches the model only in part: {len(missing)} of its parameters "
                         f"missing from the file {missing[:10]}, {len(unexpected)} keys of the file that fit nowhere "
                         f"{unexpected[:10]}; check that the file is of this architecture, or set "
                         "weights_strict: false to load what matches")
    model.load_state_dict({name: value for name, (_, value) in best.items()}, strict=False)
    print(f"weights {path}: {len(best)} tensors loaded, {len(missing)} missing, {len(unexpected)} left out",
          file=sys.stderr)
    return {"loaded": sorted(best), "missing": missing, "unexpected": unexpected}


class Bidirectional(nn.Module):
    """Every clip forward and backward in time through the same model, fused (the Stall Catchers study's
    two 40-frame reads of one window): `mean` averages the two outputs; `concat` puts the two pooled
    feature vectors side by side, projects them back to the backbone's width with a linear layer, then
    applies the model's head. The backbone and head stay the wrapped model's, so staged training,
    output bias and Grad-CAM (of the forward read) work as for the model alone."""

    def __init__(self, model: nn.Module, mode: str):
        super().__init__()
        if mode not in ("mean", "concat"):
            raise ValueError(f"unknown fuse_directions '{mode}'; choose mean or concat")
        if mode == "concat" and not hasattr(model, "forward_features"):
            raise ConfigError(f"fuse_directions: concat needs a clip model with pooled features (3D CNNs, "
                              f"videomae), not {type(model).__name__}; use mean")
        self.model, self.mode = model, mode
        self.fuse = nn.Linear(2 * model.num_features, model.num_features) if mode == "concat" else None

    @property
    def backbone(self) -> nn.Module:
        return self.model.backbone

    @property
    def head(self) -> nn.Module:
        return self.model.head

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
        backward = x.flip(2)  # [B, C, T, H, W]: time reversed
        if self.mode == "mean":
            return (self.model(x) + self.model(backward)) / 2
        features = torch.cat([self.model.forward_features(x), self.model.forward_features(backward)], dim=1)
        return self.model.forward_head(self.fuse(features))


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


def frame_attention(model: nn.Module) -> "np.ndarray | None":
    """[T] attention weight of each frame in the last forward pass (first clip), for models that pool
    over time with attention; None for the others."""
    method = getattr(model, "frame_attention", None)
    return None if method is None else method()


class FrameModel(nn.Module):
    """A timm 2D backbone applied to every frame as one batch, then a temporal head."""

    def __init__(self, backbone: nn.Module, head: TemporalHead, in_channels: int):
        super().__init__()
        self.backbone, self.head, self.in_channels = backbone, head, in_channels

    @property
    def cam_layer(self) -> str:
        return "backbone." + _last_conv_name(self.backbone)

    def cam_reshape(self, activations: torch.Tensor) -> torch.Tensor:
        """[B*T, C, h, w] layer output -> [B, C, T, h, w], so the CAM is scaled over the whole clip."""
        bt, c, h, w = activations.shape
        return activations.view(bt // self._frames, self._frames, c, h, w).transpose(1, 2)

    def frame_attention(self):
        weights = self.head.last_weights
        return None if weights is None or self.head.attention is None else weights[0].cpu().numpy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = match_channels(x, self.in_channels)
        b, c, t, h, w = x.shape
        self._frames = t
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        return self.head(self.backbone(frames).view(b, t, -1))


@MODELS.register
def frame2d(n_outputs: int, in_channels: int, pretrained: bool = False, input_size=None, backbone: str = "resnet18",
            temporal_head: str = "mean", hidden: int = 128, dropout: float | list = 0.3, classifier: str = "linear"
            ) -> nn.Module:
    """A timm 2D backbone on every frame, then a temporal head over the frame features.

    Args:
        n_outputs: the output layer's size.
        in_channels: the stem's channels.
        pretrained: timm's pretrained weights.
        input_size: unused (any clip size works).
        backbone: a timm model name.
        temporal_head: mean, attention, bilstm or bilstm_attention over the frame features.
        hidden: the head's hidden width.
        dropout: the head's dropout, or [before, after] the mlp's hidden layer.
        classifier: linear, or mlp.
    """
    import timm

    try:
        net = timm.create_model(backbone, pretrained=pretrained, num_classes=0, in_chans=in_channels)
    except Exception as err:
        if pretrained:
            raise _pretrained_error(backbone, err) from err
        raise
    return FrameModel(net, TemporalHead(temporal_head, net.num_features, n_outputs, hidden, dropout, classifier),
                      in_channels)


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


def _torchvision_video(name: str):
    def build(n_outputs: int, in_channels: int, pretrained: bool = False, input_size=None,
              dropout: float = 0.0) -> nn.Module:
        from torchvision.models import video

        try:
            net = getattr(video, name)(weights="DEFAULT" if pretrained else None)
        except Exception as err:
            raise _pretrained_error(name, err) from err
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


def _last_conv_name(module: nn.Module) -> str:
    name = None
    for n, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            name = n
    if name is None:
        raise ValueError("backbone has no Conv2d layer; set gradcam.target_layer")
    return name


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
        raise _pretrained_error(checkpoint, err) from err
    c = net.config
    if t % c.tubelet_size or h % c.patch_size:
        raise ValueError(f"videomae: clip_length {t} must be a multiple of tubelet_size {c.tubelet_size} and the "
                         f"frame size {h} a multiple of patch_size {c.patch_size}")
    return VideoMAE(net, n_outputs, hidden, dropout, pool_hidden)
