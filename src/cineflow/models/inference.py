"""Clip inference of a trained module: video-level scores (the mean of model outputs over a video's evaluation
clips, optionally with MC dropout: N stochastic passes with dropout on, for a per-video spread) and embeddings
(the input of the output layer, which the input-shift warning measures distances in).

Clips are streamed in blocks of `block`, so memory is bounded by the block, not by the video
length or the number of clips (all-clips test-time augmentation on long videos included).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from cineflow.data.clips import normalise, read_clip, to_channels_first
from cineflow.data.sampling import ClipSpec, eval_clips
from cineflow.data.store import video_frames
from cineflow.models.losses import to_scores


@dataclass(frozen=True)
class VideoScores:
    mean: np.ndarray  # [N, K] per video: mean over its clips (and over the MC passes)
    spread: np.ndarray | None  # [N, K] per video: sd over the MC passes of its clip-mean; None without MC
    clips: np.ndarray  # [M, K] per clip (mean over the MC passes)
    owner: np.ndarray  # [M] the row of each clip's video


def iter_clips(rows: pd.DataFrame, spec: ClipSpec, n_clips: int | str) -> Iterator[tuple[int, np.ndarray]]:
    """(row number, uint8 clip) for every evaluation clip; each video is opened once."""
    for i, row in enumerate(rows.itertuples(index=False)):
        frames = video_frames(row)
        for indices in eval_clips(int(row.n_frames), spec, n_clips):
            yield i, read_clip(frames, indices)


def iter_blocks(rows: pd.DataFrame, spec: ClipSpec, n_clips: int | str, block: int, mean: list[float],
                std: list[float], device: torch.device) -> Iterator[tuple[int, np.ndarray, torch.Tensor]]:
    """(clips before this block, [B] row of each clip, [B, C, T, H, W] normalised clips on `device`): every
    evaluation clip in blocks of at most `block`, so memory is bounded by the block."""
    done, owners, clips = 0, [], []
    for i, clip in iter_clips(rows, spec, n_clips):
        owners.append(i)
        clips.append(clip)
        if len(clips) == block:
            yield done, np.asarray(owners), normalise(to_channels_first(np.stack(clips)).to(device), mean, std)
            done, owners, clips = done + len(clips), [], []
    if clips:
        yield done, np.asarray(owners), normalise(to_channels_first(np.stack(clips)).to(device), mean, std)


def enable_dropout(model: torch.nn.Module) -> int:
    """Dropout layers to train mode (BatchNorm stays in eval): the MC dropout setting. Returns their count."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    for m in layers:
        m.train()
    return len(layers)


@torch.no_grad()
def score_videos(model: torch.nn.Module, rows: pd.DataFrame, mean: list[float], std: list[float], spec: ClipSpec,
                 n_clips: int | str, device: torch.device, block: int, output: str = "softmax",
                 mc_passes: int = 0, seed: int = 0) -> VideoScores:
    """Clip and video scores (probabilities, or regression values) of `rows`.

    `output` is how the model's outputs read (losses.LossEntry.output). With `mc_passes` > 0 every
    block goes through the model that many times with dropout on, each pass seeded from `seed`.

    Args:
        model: the trained module (put in eval mode here).
        rows: manifest rows of the videos.
        mean: per-channel normalisation means.
        std: per-channel normalisation standard deviations.
        spec: which frames make a clip.
        n_clips: evaluation clips per video, or "all".
        device: where the model runs.
        block: clips per forward pass (bounds memory).
        output: how the outputs read: softmax, sigmoid or identity (the loss's metadata).
        mc_passes: MC dropout passes (0 = off).
        seed: seeds the passes.
    """
    model.eval()
    passes = max(1, mc_passes)
    if mc_passes and not enable_dropout(model):
        raise ValueError("evaluate.mc_dropout needs a model with dropout layers; this one has none")
    sums: np.ndarray | None = None  # [passes, N, K]
    counts = np.zeros(len(rows))
    clip_scores: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for start, block_owners, x in iter_blocks(rows, spec, n_clips, block, mean, std, device):
        runs = []
        for p in range(passes):
            if mc_passes:  # dropout masks depend on (seed, pass, block) only: reruns give the same numbers
                torch.manual_seed(hash((seed, p, start)) % 2**31)
            runs.append(to_scores(model(x), output).float().cpu().numpy())
        if sums is None:
            sums = np.zeros((passes, len(rows), runs[0].shape[1]))
        for p, probs in enumerate(runs):
            np.add.at(sums[p], block_owners, probs)
        np.add.at(counts, block_owners, 1)
        clip_scores.append(np.mean(runs, axis=0))
        owners.append(block_owners)
    model.eval()
    if sums is None:
        empty = np.zeros((0, 0))
        return VideoScores(empty, None, empty, np.zeros(0, int))
    per_pass = sums / counts[None, :, None]
    return VideoScores(per_pass.mean(0), per_pass.std(0) if mc_passes else None, np.concatenate(clip_scores),
                       np.concatenate(owners))


def predict_videos(model: torch.nn.Module, rows: pd.DataFrame, mean: list[float], std: list[float],
                   spec: ClipSpec, n_clips: int | str, device: torch.device, block: int,
                   output: str = "softmax") -> np.ndarray:
    """[N, n_classes] probabilities (or [N, 1] regression values), each the mean over the video's clips.

    Args: as for `score_videos`, which this is without MC dropout.
    """
    return score_videos(model, rows, mean, std, spec, n_clips, device, block, output).mean


def last_linear(model: torch.nn.Module) -> torch.nn.Linear:
    """The output layer: its input is the embedding (pooled features, after the head's hidden layers)."""
    layers = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no linear output layer in its head to take embeddings from")
    return layers[-1]


@torch.no_grad()
def embed_videos(model: torch.nn.Module, rows: pd.DataFrame, mean: list[float], std: list[float], spec: ClipSpec,
                 n_clips: int | str, device: torch.device, block: int) -> np.ndarray:
    """[N, D] embeddings: the input of the output layer, averaged over each video's evaluation clips (and over
    the two reads of a bidirectional model).

    Args: as for `score_videos`.
    """
    model.eval()
    captured: list[torch.Tensor] = []
    hook = last_linear(model).register_forward_hook(lambda m, inputs, out: captured.append(inputs[0].float()))
    sums, counts = None, np.zeros(len(rows))
    try:
        for _, owners, x in iter_blocks(rows, spec, n_clips, block, mean, std, device):
            captured.clear()
            model(x)
            features = torch.stack(captured).mean(0).cpu().numpy()  # [B, D], the reads averaged
            if sums is None:
                sums = np.zeros((len(rows), features.shape[1]))
            np.add.at(sums, owners, features)
            np.add.at(counts, owners, 1)
    finally:
        hook.remove()
    return sums / np.maximum(counts, 1)[:, None] if sums is not None else np.zeros((0, 0))
