"""Which frames make a clip: samplers in a registry, random at training and fixed at evaluation.

Index arrays use -1 for padding frames past either end of a short video (read as zeros).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from cineflow.config import ModelConfig
from cineflow.registry import Registry


@dataclass(frozen=True)
class ClipSpec:
    mode: str  # a SAMPLERS name
    length: int
    period: int = 1
    offset: int = 0
    fused: bool = False  # the model reads every clip backward itself (fuse_directions)

    @classmethod
    def of(cls, model: ModelConfig) -> "ClipSpec":
        """The clips of a model's config entry."""
        return cls(model.clip_sampling, model.clip_length, model.clip_period, model.clip_offset,
                   bool(model.fuse_directions))


# (n_frames, spec, rng or None for evaluation, n_clips at evaluation) -> clips
Sampler = Callable[[int, ClipSpec, "np.random.Generator | None", "int | str"], list[np.ndarray]]
SAMPLERS: Registry[Sampler] = Registry("clip sampler", "models.<name>.clip_sampling")


def train_clip(n_frames: int, spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    return _sampler(spec)(n_frames, spec, rng, 1)[0]


def eval_clips(n_frames: int, spec: ClipSpec, n_clips: int | str = 1) -> list[np.ndarray]:
    """The fixed clips a video is scored on; their scores are averaged (n_clips='all': every start)."""
    return _sampler(spec)(n_frames, spec, None, n_clips)


def _sampler(spec: ClipSpec) -> Sampler:
    return SAMPLERS.get(spec.mode)


def _window(n_frames: int, start: int, spec: ClipSpec) -> np.ndarray:
    idx = start + spec.period * np.arange(spec.length)
    return np.where((idx >= 0) & (idx < n_frames), idx, -1)


@SAMPLERS.register
def random(n_frames, spec, rng, n_clips):
    """EchoNet style: L frames every p frames from a random start; evaluation spreads starts evenly."""
    last = max(0, n_frames - (spec.length - 1) * spec.period - 1)
    if rng is not None:
        return [_window(n_frames, int(rng.integers(0, last + 1)), spec)]
    if n_clips == "all":
        starts = np.arange(last + 1)
    else:
        starts = np.unique(np.linspace(0, last, int(n_clips)).round().astype(int))
    return [_window(n_frames, int(s), spec) for s in starts]


@SAMPLERS.register
def uniform(n_frames, spec, rng, n_clips):
    """L frames spread over the whole video: one per equal segment (random within it at training)."""
    edges = np.linspace(0, n_frames, spec.length + 1)
    if rng is None:
        idx = (edges[:-1] + edges[1:]) / 2
    else:
        idx = edges[:-1] + rng.random(spec.length) * (edges[1:] - edges[:-1])
    return [np.minimum(np.floor(idx).astype(int), n_frames - 1)]


@SAMPLERS.register
def center(n_frames, spec, rng, n_clips):
    """A window around the middle frame (+ offset), read forward and backward: two clips, one of them drawn
    at training and both averaged at evaluation; only the forward one for a model that reads it backward
    itself (fuse_directions)."""
    middle = n_frames // 2 + spec.offset
    forward = _window(n_frames, middle - spec.period * (spec.length // 2), spec)
    clips = [forward] if spec.fused else [forward, forward[::-1].copy()]
    if rng is not None:
        return [clips[int(rng.integers(0, len(clips)))]]
    return clips
