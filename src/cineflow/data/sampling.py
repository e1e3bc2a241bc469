"""Which frames make a clip: samplers in a registry, random at training and fixed at evaluation.

Index arrays use -1 for padding frames past either end of a short video (read as zeros). A model that reads
every clip forward and backward (fuse_directions) gets both reads side by side in time: 2 x clip_length frames,
the forward read then the backward one, so a sampler can choose the backward read's own window.
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
    fused: bool = False  # the model gets both reads of every clip (fuse_directions)

    @property
    def frames(self) -> int:
        """Frames per clip as delivered: both reads for a fused model."""
        return self.length * (2 if self.fused else 1)

    @classmethod
    def of(cls, model: ModelConfig) -> "ClipSpec":
        """The clips of a model's config entry."""
        return cls(model.clip_sampling, model.clip_length, model.clip_period, model.clip_offset,
                   bool(model.fuse_directions))


# (n_frames, spec, rng or None for evaluation, n_clips at evaluation) -> clips
Sampler = Callable[[int, ClipSpec, "np.random.Generator | None", "int | str"], list[np.ndarray]]
SAMPLERS: Registry[Sampler] = Registry("clip sampler", "models.<name>.clip_sampling")


def train_clip(n_frames: int, spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    return _reads(spec, _sampler(spec)(n_frames, spec, rng, 1))[0]


def eval_clips(n_frames: int, spec: ClipSpec, n_clips: int | str = 1) -> list[np.ndarray]:
    """The fixed clips a video is scored on; their scores are averaged (n_clips='all': every start)."""
    return _reads(spec, _sampler(spec)(n_frames, spec, None, n_clips))


def _reads(spec: ClipSpec, clips: list[np.ndarray]) -> list[np.ndarray]:
    """For a fused model, each clip's forward read then its backward read; a sampler that returned 2 x length
    frames chose the backward read itself (middle_window), any other clip is read back in reverse."""
    if not spec.fused:
        return clips
    return [c if len(c) == 2 * spec.length else np.concatenate([c, c[::-1]]) for c in clips]


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
    at training and both averaged at evaluation; for a fused model, the one clip whose two reads it fuses."""
    middle = n_frames // 2 + spec.offset
    forward = _window(n_frames, middle - spec.period * (spec.length // 2), spec)
    return _directions(forward, forward[::-1].copy(), spec, rng)


@SAMPLERS.register
def middle_window(n_frames, spec, rng, n_clips):
    """The Stall Catchers notebook's window, as its code runs. A video shorter than the window is padded by
    repeating its first frame in front (the backward read: its last frame), never with black, which means
    something in these videos. On the padded length T the window starts at T//2 - L//2, and where
    T >= 1.5 L a further (L//2)//2 - 1 frames on (the middle - 11 for L = 40; the text says "10 back").
    The backward read is the same positions of the reversed padded list: a window of its own, mirrored
    about the middle, not the forward read reversed. L is the window's span (clip_length frames every
    clip_period); clip_offset does not apply."""
    span = (spec.length - 1) * spec.period + 1
    total = max(n_frames, span)
    start = total // 2 - span // 2 + ((span // 2) // 2 - 1 if total >= span + span // 2 else 0)
    steps = start + spec.period * np.arange(spec.length)
    pad = total - n_frames
    forward = np.concatenate([np.zeros(pad, int), np.arange(n_frames)])[steps]
    backward = np.concatenate([np.full(pad, n_frames - 1), np.arange(n_frames)[::-1]])[steps]
    return _directions(forward, backward, spec, rng)


def _directions(forward: np.ndarray, backward: np.ndarray, spec: ClipSpec, rng) -> list[np.ndarray]:
    """A fused model's one clip (both reads side by side), else the two reads as clips: one drawn at
    training, both averaged at evaluation."""
    if spec.fused:
        return [np.concatenate([forward, backward])]
    clips = [forward, backward]
    if rng is not None:
        return [clips[int(rng.integers(0, len(clips)))]]
    return clips
