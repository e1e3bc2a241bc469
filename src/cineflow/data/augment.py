"""On-the-fly augmentation of clips [B, C, T, H, W] (uint8, or float in [0, 1]) on their device, at training only.

Each op is a typed settings class in the AUGMENTS registry, named as its key in `models.<name>.augment`, its
fields filled from the schema (the one home of their defaults). Its `kind` says when it runs:

- `move` ops only move or copy pixels (temporal crop, shift, hflip): they run on the clips as they come, so
  uint8 clips stay uint8 through them (a quarter of the bytes);
- `spatial` ops (rotation, translation, zoom) give the parameters of one resampling per clip;
- `intensity` ops compute on float [0, 1].

Ops run in registration order. Random draws come from a CPU generator seeded per (seed, epoch, step), so a
resumed run augments exactly as an uninterrupted one would.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
import torch.nn.functional as F

from cineflow.config import cached_schema, deref, fill_defaults
from cineflow.registry import Registry

AUGMENTS: Registry[type["Op"]] = Registry("augmentation", "models.<name>.augment")


class Draws:
    """The batch's random draws, in the order the ops ask for them (one CPU generator)."""

    def __init__(self, batch: int, generator: torch.Generator):
        self.batch, self.generator = batch, generator

    def chosen(self, p: float) -> torch.Tensor | None:
        """[B] which clips an op with probability `p` changes; None when it changes none (nothing drawn at p 0)."""
        if p <= 0:
            return None
        picked = torch.rand(self.batch, generator=self.generator) < p
        return picked if picked.any() else None

    def uniform(self, low: float, high: float) -> torch.Tensor:
        """[B] values uniform in [low, high)."""
        return low + (high - low) * torch.rand(self.batch, generator=self.generator)


def in_memory_order(clip: torch.Tensor, *dims: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """(a view of `clip` [C, T, H, W] with its dimensions in memory order, where `dims` went in it). Copies
    between such views move whole rows: on the cache's channels-last layout ([T, H, W, C] in memory), a copy
    through the [C, T, H, W] view goes pixel by pixel and is 5 to 10 times slower."""
    order = sorted(range(clip.dim()), key=lambda d: -clip.stride(d))
    return clip.permute(order), tuple(order.index(d) for d in dims)


def per_clip(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[B] values on the CPU -> broadcastable over `x`'s clips, on its device."""
    return values.to(x).view(-1, 1, 1, 1, 1)


@dataclass(frozen=True)
class Op:
    """One augmentation's settings; `p` is the probability per clip."""

    p: float
    name: ClassVar[str] = ""
    kind: ClassVar[str] = "intensity"  # move | spatial | intensity

    def apply(self, x: torch.Tensor, sel: torch.Tensor, draws: Draws) -> torch.Tensor:
        """The clips `sel` changed (move and intensity ops; spatial ops are applied together by `affine`)."""
        raise NotImplementedError


@AUGMENTS.register
@dataclass(frozen=True)
class TemporalCrop(Op):
    """A random sub-window of the clip stretched back to its length (a speed change)."""

    min_fraction: float
    name = "temporal_crop"
    kind = "move"

    def apply(self, x, sel, draws):
        frames = x.shape[2]
        for b in torch.nonzero(sel).flatten().tolist():
            fraction = self.min_fraction + (1 - self.min_fraction) * float(torch.rand(1, generator=draws.generator))
            width = max(2, round(fraction * frames))
            start = int(torch.randint(0, frames - width + 1, (1,), generator=draws.generator))
            idx = torch.linspace(start, start + width - 1, frames).round().long().to(x.device)
            x[b] = x[b][:, idx]
        return x


@AUGMENTS.register
@dataclass(frozen=True)
class Shift(Op):
    """Whole-pixel shifts in [-pixels, pixels] per clip, the same for its frames, with a black border:
    EchoNet-Dynamic's zero padding and random crop of the original size."""

    pixels: int
    name = "shift"
    kind = "move"

    def apply(self, x, sel, draws):
        offsets = torch.randint(-self.pixels, self.pixels + 1, (x.shape[0], 2), generator=draws.generator)
        height, width = x.shape[-2:]
        scratch = None  # one per batch for the kept part of each clip: no fresh pages per clip
        for b in torch.nonzero(sel).flatten().tolist():
            dy, dx = (int(v) for v in offsets[b])
            if dy == dx == 0:
                continue
            clip, (h, w) = in_memory_order(x[b], 2, 3)  # moved in place, whole rows at a time
            source, target = [slice(None)] * 4, [slice(None)] * 4
            source[h], source[w] = slice(max(-dy, 0), height + min(-dy, 0)), slice(max(-dx, 0), width + min(-dx, 0))
            target[h], target[w] = slice(max(dy, 0), height + min(dy, 0)), slice(max(dx, 0), width + min(dx, 0))
            kept = clip[tuple(source)]
            if scratch is None:
                scratch = torch.empty(clip.numel(), dtype=clip.dtype, device=clip.device)
            held = scratch[:kept.numel()].view(kept.shape).copy_(kept)  # source and target overlap
            clip.zero_()  # the black border
            clip[tuple(target)] = held
        return x


@AUGMENTS.register
@dataclass(frozen=True)
class Hflip(Op):
    """A left-right mirror of the whole clip."""

    name = "hflip"
    kind = "move"

    def apply(self, x, sel, draws):
        for b in torch.nonzero(sel).flatten().tolist():  # in place, the chosen clips only
            clip, (w,) = in_memory_order(x[b], 3)
            clip.copy_(clip.flip(w))
        return x


@AUGMENTS.register
@dataclass(frozen=True)
class Rotation(Op):
    """A rotation uniform in [-degrees, degrees], or one of a fixed set of `angles`."""

    degrees: float
    angles: list | None
    name = "rotation"
    kind = "spatial"


@AUGMENTS.register
@dataclass(frozen=True)
class Translation(Op):
    """A translation of up to `fraction` of the frame on each axis (resampled)."""

    fraction: float
    name = "translation"
    kind = "spatial"


@AUGMENTS.register
@dataclass(frozen=True)
class Zoom(Op):
    """A scale uniform in [1 - range, 1 + range]."""

    range: float
    name = "zoom"
    kind = "spatial"


@AUGMENTS.register
@dataclass(frozen=True)
class Brightness(Op):
    """add: + uniform [-delta, delta]; multiply: x uniform [1 - delta, 1 + delta] (the echo quality study's)."""

    delta: float
    mode: str
    name = "brightness"

    def apply(self, x, sel, draws):
        if self.mode == "multiply":
            return x.mul_(per_clip(torch.where(sel, draws.uniform(1 - self.delta, 1 + self.delta), 1.0), x))
        return x.add_(per_clip(torch.where(sel, draws.uniform(-self.delta, self.delta), 0.0), x))


@AUGMENTS.register
@dataclass(frozen=True)
class Contrast(Op):
    """Intensities scaled around the clip's mean by a factor uniform in [1 - factor, 1 + factor]."""

    factor: float
    name = "contrast"

    def apply(self, x, sel, draws):
        f = per_clip(torch.where(sel, draws.uniform(1 - self.factor, 1 + self.factor), 1.0), x)
        mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
        return torch.where(per_clip(sel, x) > 0, (x - mean) * f + mean, x)


@AUGMENTS.register
@dataclass(frozen=True)
class Noise(Op):
    """Gaussian noise of sd `std`, or of an sd uniform in the range `std` per clip."""

    std: float | list
    name = "noise"

    def apply(self, x, sel, draws):
        noise = torch.randn(x.shape, generator=draws.generator).to(x)
        std = draws.uniform(*self.std) if isinstance(self.std, list) else torch.full((x.shape[0],), float(self.std))
        return x.add_(noise * per_clip(torch.where(sel, std, 0.0), x))


@AUGMENTS.register
@dataclass(frozen=True)
class Blur(Op):
    """Gaussian blur of each chosen clip's frames, its sigma (pixels) uniform in the `sigma` range."""

    sigma: list
    name = "blur"

    def apply(self, x, sel, draws):
        from torchvision.transforms.functional import gaussian_blur

        sigmas = draws.uniform(*self.sigma)
        for b in torch.nonzero(sel).flatten().tolist():
            s = float(sigmas[b])
            k = 2 * math.ceil(3 * s) + 1  # +- 3 sigma
            flat = x[b].transpose(0, 1)  # [T, C, H, W]: frames as a batch of images
            x[b] = gaussian_blur(flat, [k, k], [s, s]).transpose(0, 1)
        return x


@AUGMENTS.register
@dataclass(frozen=True)
class FrameMask(Op):
    """Some frames replaced by the clip's mean: the model cannot rely on any single frame."""

    fraction: float
    name = "frame_mask"

    def apply(self, x, sel, draws):
        frames = x.shape[2]
        k = max(1, round(self.fraction * frames))
        for b in torch.nonzero(sel).flatten().tolist():
            idx = torch.randperm(frames, generator=draws.generator)[:k].to(x.device)
            x[b][:, idx] = x[b].mean()
        return x


def augmentations(section: dict) -> dict[str, Op]:
    """The typed ops of a model's `augment` section, every setting it leaves out filled from the schema."""
    schema = cached_schema()
    node = deref(schema["definitions"]["model"], schema)["properties"]["augment"]
    filled = fill_defaults(copy.deepcopy(section), node, schema)
    ops = {}
    for name, cls in AUGMENTS.items():
        ops[name] = cls(**{f.name: filled[name][f.name] for f in fields(cls)})
    return ops


def augment(x: torch.Tensor, ops: dict[str, Op], generator: torch.Generator, inplace: bool = False) -> torch.Tensor:
    """Apply every op (`augmentations`) whose probability is above zero; `inplace`: `x` may be changed (a
    batch the caller owns: no copy of it first).

    Returns `x`'s dtype when only move ops are on (the same values as on float clips, exactly), else
    float in [0, 1]."""
    on = [op for op in ops.values() if op.p > 0]
    if not on:
        return x  # augmentation off: no copy on the training hot path
    draws = Draws(x.shape[0], generator)
    x = x if inplace else x.clone()
    for op in (op for op in ops.values() if op.kind == "move"):
        if (sel := draws.chosen(op.p)) is not None:
            x = op.apply(x, sel, draws)
    if all(op.kind == "move" for op in on):
        return x
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    spatial = {op.name: draws.chosen(op.p) for op in ops.values() if op.kind == "spatial"}
    if any(s is not None for s in spatial.values()):
        x = affine(x, ops, spatial, draws)
    for op in (op for op in ops.values() if op.kind == "intensity"):
        if (sel := draws.chosen(op.p)) is not None:
            x = op.apply(x, sel, draws)
    return x.clamp_(0.0, 1.0)


def affine(x: torch.Tensor, ops: dict[str, Op], spatial: dict[str, torch.Tensor | None],
           draws: Draws) -> torch.Tensor:
    """Rotation, translation and zoom as one resampling per clip (the same for all its frames).

    Args:
        x: float clips.
        ops: the typed ops (their rotation, translation and zoom settings).
        spatial: which clips each spatial op changes (None: none).
        draws: the batch's draws.
    """
    batch, channels, frames, height, width = x.shape
    rotation, translation, zoom = ops["rotation"], ops["translation"], ops["zoom"]
    zeros, ones = torch.zeros(batch), torch.ones(batch)
    angle = draws.uniform(-1, 1) * math.radians(rotation.degrees)
    if rotation.angles:  # one of a fixed set (the Stall Catchers study's 7 angles)
        angles = torch.tensor([math.radians(a) for a in rotation.angles])
        angle = angles[torch.randint(len(angles), (batch,), generator=draws.generator)]
    angle = _where(spatial["rotation"], angle, zeros)
    tx, ty = draws.uniform(-2 * translation.fraction, 2 * translation.fraction), draws.uniform(
        -2 * translation.fraction, 2 * translation.fraction)
    tx, ty = _where(spatial["translation"], tx, zeros), _where(spatial["translation"], ty, zeros)
    scale = _where(spatial["zoom"], draws.uniform(1 - zoom.range, 1 + zoom.range), ones)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], 1).to(x)
    moved = torch.zeros(batch, dtype=torch.bool)
    for s in spatial.values():
        if s is not None:
            moved |= s
    index = torch.nonzero(moved).flatten().to(x.device)
    flat = x[index].reshape(-1, channels * frames, height, width)
    grid = F.affine_grid(theta[index], list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x[index] = out.reshape(-1, channels, frames, height, width)
    return x


def _where(sel: torch.Tensor | None, values: torch.Tensor, otherwise: torch.Tensor) -> torch.Tensor:
    return torch.where(sel, values, otherwise) if sel is not None else otherwise
