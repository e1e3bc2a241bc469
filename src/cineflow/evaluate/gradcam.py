"""Grad-CAM (pytorch-grad-cam): original | overlay, under a band with truth, prediction and score.

The CAM is computed on the cached clip the model sees, then drawn on the source frames that clip came from,
at the source's own size, crop and aspect (the cache's crop, ROI and sector mask undone), so a clinician sees
their echo and not the 112 px cache. MP4 for clips, PNG for 1-frame clips (images); for attention-pooling
models also a plot of the temporal attention weights of the explained clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cineflow.config import CacheConfig, GradcamConfig
from cineflow.data.clips import read_clip, to_tensor
from cineflow.data.preprocess import cache_config, read_as_cached, source_view
from cineflow.data.readers import UnreadableVideo
from cineflow.data.sampling import eval_clips
from cineflow.data.store import video_frames
from cineflow.figures import plt, save_png
from cineflow.io import write_csv
from cineflow.models.architectures import frame_attention
from cineflow.models.cam import clip_cam, overlay, write_panels
from cineflow.models.trained import TrainedModel
from cineflow.presentation import view_of
from cineflow.tasks import Task

INDEX_COLUMNS = ["video_id", "kind", "label", "prediction", "score", "uncertainty", "file", "attention", "drawn_on"]


def select_videos(predictions: pd.DataFrame, task: Task, threshold: float | None, n: int,
                  kinds: list[str] | None = None) -> pd.DataFrame:
    """`n` test videos, taken in turn from the lists of `kinds` (gradcam.select; None = the task's
    default), each video at most once.

    Args:
        predictions: the fold's test predictions.
        task: which ranks the candidates (Task.cam_candidates).
        threshold: the fold's decision threshold (binary), else None.
        n: how many videos to pick.
        kinds: gradcam.select; None = the task view's cam_kinds.
    """
    candidates = view_of(task).cam_candidates(predictions, threshold, kinds)
    columns = list(candidates[0].columns) if candidates else list(predictions.columns) + ["kind"]
    picks, seen, queues = [], set(), [list(c.itertuples(index=False)) for c in candidates]
    while len(picks) < n and any(queues):
        for queue in queues:
            while queue and queue[0].video_id in seen:
                queue.pop(0)
            if queue and len(picks) < n:
                seen.add(queue[0].video_id)
                picks.append(queue.pop(0))
    return pd.DataFrame(picks, columns=columns)


def real_time(picked: np.ndarray, fps: float, default: float = 10.0) -> float:
    """Playback rate that shows frames `picked` (source indices, in order) in the source's time: a clip of
    every second frame of a 50 fps video plays at 25. `default` where the source has no rate."""
    if fps <= 0:
        return default
    span = int(picked[-1] - picked[0]) if len(picked) > 1 else 0
    return fps * (len(picked) - 1) / span if span > 0 else fps


def on_source(video, cache: CacheConfig, indices: np.ndarray, heat: np.ndarray, raw: np.ndarray, caption: str,
              cfg: GradcamConfig) -> tuple[np.ndarray, float, str]:
    """(panels, playback rate, what they are drawn on) of one clip's CAM, drawn on the source frames the clip's
    cached frames came from, at the source's size, crop and aspect (at most cfg.max_side a side), with the
    cache's sector or ROI mask. A source that cannot be read now, or no longer matches what was cached, gets
    the cached frames instead, and says why.

    Args:
        video: the video's manifest row (source, source_frames, height, width).
        cache: the frame-cache settings it was cached with.
        indices: the clip's indices into the cached frames (-1: padding).
        heat: [T, h, w] CAM of the clip.
        raw: [T, size, size, C] the clip's cached frames.
        caption: drawn on each original frame.
        cfg: the gradcam section (max_side, fps).
    """
    import cv2

    valid = indices >= 0
    try:
        frames, fps = read_as_cached(video["source"], cache)
        expected = (int(video["source_frames"]), int(video["height"]), int(video["width"]))
        if (len(frames), *frames.shape[1:3]) != expected:
            raise UnreadableVideo(f"the source has {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]} "
                                  f"now, {expected[0]} of {expected[2]}x{expected[1]} when it was cached")
        view = source_view(frames, fps, cache)
        picked = view.keep[indices[valid]]
    except UnreadableVideo as err:
        scale = max(1, min(4, cfg.max_side // raw.shape[2]))  # the cache is small: enlarged, pixels kept
        shown = np.repeat(np.repeat(raw[valid], scale, axis=1), scale, axis=2)
        maps = np.stack([cv2.resize(h, (shown.shape[2], shown.shape[1]), interpolation=cv2.INTER_LINEAR)
                         for h in np.asarray(heat[valid], np.float32)])
        return overlay(shown, maps, caption), cfg.fps or 10.0, f"cached frames: {err}"
    shown, maps, mask = frames[picked], view.to_source(heat[valid]), view.mask
    height, width = shown.shape[1:3]
    scale = min(1.0, cfg.max_side / max(height, width))
    if scale < 1:
        size = (max(2, round(width * scale)), max(2, round(height * scale)))
        shown = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1)
                          for f in shown])
        maps = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_LINEAR) for m in maps])
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    drawn = f"source {width}x{height}" + (f" shown at {shown.shape[2]}x{shown.shape[1]}" if scale < 1 else "")
    return overlay(shown, maps, caption, mask), cfg.fps or real_time(picked, fps), drawn


def attention_figure(weights: np.ndarray, title: str):
    """A model's temporal attention over the frames of one clip."""
    fig, ax = plt.subplots(figsize=(4, 1.8))
    ax.bar(np.arange(len(weights)), weights, color="C4")
    ax.set(xlabel="frame", ylabel="attention", title=title)
    ax.title.set_fontsize(8)
    return fig


@torch.no_grad()
def clip_attention(model: torch.nn.Module, clip: torch.Tensor) -> np.ndarray | None:
    """[T] temporal attention of the model on this clip (None for models without attention pooling)."""
    model(clip[None])
    return frame_attention(model)


def render_fold(model_path: str | Path, predictions: pd.DataFrame, manifest: pd.DataFrame, threshold: float | None,
                cfg: GradcamConfig, out_dir: str | Path, device: torch.device = torch.device("cpu")) -> pd.DataFrame:
    """Write one MP4 (PNG for images) per selected test video, its attention plot, and index.csv.

    Args:
        model_path: the fold's checkpoint.
        predictions: the fold's test predictions (evaluate's predictions.csv), from which videos are chosen.
        manifest: the frame cache's manifest (where each video's frames are).
        threshold: the fold's val-tuned decision threshold (binary), or None.
        cfg: the gradcam section (how many videos, which, fps, layer).
        out_dir: the folder of the MP4/PNG files and index.csv.
        device: where the model runs the CAM's forward and backward passes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    trained = TrainedModel.load(model_path, device)
    model, task, norm = trained.module, trained.task, trained.normalisation
    view = view_of(task)
    layer = cfg.target_layer or model.cam_layer
    chosen = select_videos(predictions, task, threshold, cfg.n_videos, cfg.select)
    rows = []
    for pick in chosen.itertuples(index=False):
        video = manifest.loc[manifest["video_id"] == pick.video_id].iloc[0]
        indices = eval_clips(int(video["n_frames"]), trained.clip_spec, 1)[0]
        raw = read_clip(video_frames(video), indices)
        clip = to_tensor(raw, norm["mean"], norm["std"]).to(device)  # for clip_attention too
        heat = clip_cam(model, clip, view.cam_output(pick.prediction, trained.output), layer)
        panels, rate, drawn = on_source(video, cache_config(video["preprocess"]), indices, heat, raw,
                                        view.caption(pick), cfg)
        print(f"{pick.video_id}: drawn on the {drawn}")
        name = write_panels(out_dir / str(pick.video_id), panels, rate)
        weights, attention = clip_attention(model, clip), ""
        if weights is not None:
            attention = f"{pick.video_id}.attention.png"
            save_png(attention_figure(weights, f"{pick.video_id}: temporal attention"), out_dir / attention)
        rows.append(dict(video_id=pick.video_id, kind=pick.kind, label=pick.label, prediction=pick.prediction,
                         score=float(pick.score), uncertainty=float(pick.uncertainty), file=name,
                         attention=attention, drawn_on=drawn))
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    write_csv(out_dir / "index.csv", index)
    return index
