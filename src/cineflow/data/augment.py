"""On-the-fly augmentation of clips [B, C, T, H, W] (uint8, or float in [0, 1]) on their device, at training only.

The ops that only move or copy pixels (temporal crop, shift, hflip) run on the clips as they come, so
uint8 clips stay uint8 through them (a quarter of the bytes); the others need float [0, 1] and convert.

Random draws come from a CPU generator seeded per (seed, epoch, step), so a resumed run
augments exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MOVE_OPS = ("temporal_crop", "shift", "hflip")  # exact on uint8: pixels are copied, never computed


def augment(x: torch.Tensor, cfg: dict, generator: torch.Generator) -> torch.Tensor:
    """Apply every op of the model's `augment` section whose probability is above zero.

    Returns `x`'s dtype when only MOVE_OPS are on (the same values as on float clips, exactly), else
    float in [0, 1]."""
    batch = x.shape[0]

    def chosen(name: str) -> torch.Tensor | None:
        p = float(cfg.get(name, {}).get("p", 0.0))
        if p <= 0:
            return None
        picked = torch.rand(batch, generator=generator) < p
        return picked if picked.any() else None

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(batch, generator=generator)

    def per_clip(values: torch.Tensor) -> torch.Tensor:  # [B] on the CPU -> broadcastable on x's device
        return values.to(x).view(-1, 1, 1, 1, 1)

    on = {name for name, op in cfg.items() if float(op.get("p", 0.0)) > 0}
    if not on:
        return x  # augmentation off: no copy on the training hot path
    x = x.clone()
    if (sel := chosen("temporal_crop")) is not None:
        x = _temporal_crop(x, sel, cfg["temporal_crop"].get("min_fraction", 0.7), generator)
    if (sel := chosen("shift")) is not None:
        x = _shift(x, sel, int(cfg["shift"].get("pixels", 12)), generator)
    if (sel := chosen("hflip")) is not None:
        x = torch.where(per_clip(sel) > 0, x.flip(-1), x)
    if on <= set(MOVE_OPS):
        return x
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    spatial = [chosen(name) for name in ("rotation", "translation", "zoom")]
    if any(s is not None for s in spatial):
        x = _affine(x, cfg, spatial, uniform, generator)
    if (sel := chosen("brightness")) is not None:
        delta = cfg["brightness"].get("delta", 0.1)
        if cfg["brightness"].get("mode", "add") == "multiply":  # x (1 +- delta): the echo quality study's 0.9-1.1
            x *= per_clip(torch.where(sel, uniform(1 - delta, 1 + delta), 1.0))
        else:
            x += per_clip(torch.where(sel, uniform(-delta, delta), 0.0))
    if (sel := chosen("contrast")) is not None:
        factor = cfg["contrast"].get("factor", 0.2)
        f = per_clip(torch.where(sel, uniform(1 - factor, 1 + factor), 1.0))
        mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
        x = torch.where(per_clip(sel) > 0, (x - mean) * f + mean, x)
    if (sel := chosen("noise")) is not None:
        noise = torch.randn(x.shape, generator=generator).to(x)
        std = cfg["noise"].get("std", 0.03)
        std = uniform(*std) if isinstance(std, list) else torch.full((batch,), float(std))  # a range: per clip
        x += noise * per_clip(torch.where(sel, std, 0.0))
    if (sel := chosen("blur")) is not None:
        x = _blur(x, sel, cfg["blur"].get("sigma", [0.1, 1.0]), uniform)
    if (sel := chosen("frame_mask")) is not None:
        x = _frame_mask(x, sel, cfg["frame_mask"].get("fraction", 0.1), generator)
    return x.clamp_(0.0, 1.0)


def _affine(x: torch.Tensor, cfg: dict, spatial: list, uniform, generator: torch.Generator) -> torch.Tensor:
    """Rotation, translation and zoom as one resampling per clip (the same for all its frames)."""
    batch, channels, frames, height, width = x.shape
    rotation, translation, zoom = spatial
    zeros, ones = torch.zeros(batch), torch.ones(batch)
    angle = uniform(-1, 1) * math.radians(cfg.get("rotation", {}).get("degrees", 10))
    if cfg.get("rotation", {}).get("angles"):  # one of a fixed set (the Stall Catchers study's 7 angles)
        angles = torch.tensor([math.radians(a) for a in cfg["rotation"]["angles"]])
        angle = angles[torch.randint(len(angles), (batch,), generator=generator)]
    angle = torch.where(rotation, angle, zeros) if rotation is not None else zeros
    shift = cfg.get("translation", {}).get("fraction", 0.1) * 2
    tx, ty = uniform(-shift, shift), uniform(-shift, shift)
    tx = torch.where(translation, tx, zeros) if translation is not None else zeros
    ty = torch.where(translation, ty, zeros) if translation is not None else zeros
    span = cfg.get("zoom", {}).get("range", 0.1)
    scale = uniform(1 - span, 1 + span)
    scale = torch.where(zoom, scale, ones) if zoom is not None else ones
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], 1).to(x)
    moved = torch.zeros(batch, dtype=torch.bool)
    for s in spatial:
        if s is not None:
            moved |= s
    index = torch.nonzero(moved).flatten().to(x.device)
    flat = x[index].reshape(-1, channels * frames, height, width)
    grid = F.affine_grid(theta[index], list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x[index] = out.reshape(-1, channels, frames, height, width)
    return x


def _blur(x: torch.Tensor, sel: torch.Tensor, sigma: list[float], uniform) -> torch.Tensor:
    """Gaussian blur of each chosen clip's frames, its sigma (pixels) uniform in the `sigma` range."""
    from torchvision.transforms.functional import gaussian_blur

    sigmas = uniform(*sigma)
    for b in torch.nonzero(sel).flatten().tolist():
        s = float(sigmas[b])
        k = 2 * math.ceil(3 * s) + 1  # +- 3 sigma
        flat = x[b].transpose(0, 1)  # [T, C, H, W]: frames as a batch of images
        x[b] = gaussian_blur(flat, [k, k], [s, s]).transpose(0, 1)
    return x


def _shift(x: torch.Tensor, sel: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Whole-pixel shifts in [-pixels, pixels] per clip, the same for its frames, with a black border:
    EchoNet-Dynamic's zero padding and random crop of the original size."""
    offsets = torch.randint(-pixels, pixels + 1, (x.shape[0], 2), generator=generator)
    height, width = x.shape[-2:]
    for b in torch.nonzero(sel).flatten().tolist():
        dy, dx = (int(v) for v in offsets[b])
        if dy == dx == 0:
            continue
        moved = torch.zeros_like(x[b])
        moved[..., max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
            x[b][..., max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)]
        x[b] = moved
    return x


def _temporal_crop(x: torch.Tensor, sel: torch.Tensor, min_fraction: float, generator) -> torch.Tensor:
    """A random sub-window of the clip stretched back to its length (a speed change)."""
    frames = x.shape[2]
    for b in torch.nonzero(sel).flatten().tolist():
        fraction = min_fraction + (1 - min_fraction) * float(torch.rand(1, generator=generator))
        width = max(2, round(fraction * frames))
        start = int(torch.randint(0, frames - width + 1, (1,), generator=generator))
        idx = torch.linspace(start, start + width - 1, frames).round().long().to(x.device)
        x[b] = x[b][:, idx]
    return x


def _frame_mask(x: torch.Tensor, sel: torch.Tensor, fraction: float, generator) -> torch.Tensor:
    """Some frames replaced by the clip's mean: the model cannot rely on any single frame."""
    frames = x.shape[2]
    k = max(1, round(fraction * frames))
    for b in torch.nonzero(sel).flatten().tolist():
        idx = torch.randperm(frames, generator=generator)[:k].to(x.device)
        x[b][:, idx] = x[b].mean()
    return x
