"""Grad-CAM (pytorch-grad-cam): original | overlay, with truth, prediction and score on the frame.

MP4 for clips, PNG for 1-frame clips (images); for attention-pooling models also a plot of the
temporal attention weights of the explained clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from cineflow.config import GradcamConfig
from cineflow.data.cache import video_frames
from cineflow.data.clips import read_clip, to_tensor
from cineflow.data.sampling import ClipSpec, eval_clips
from cineflow.data.video_io import write_mp4
from cineflow.evaluate.tasks import Task
from cineflow.io import atomic_path, write_csv
from cineflow.models.architectures import frame_attention, get_module
from cineflow.report.plots import attention_figure, save_png
from cineflow.train.checkpoint import load_model

INDEX_COLUMNS = ["video_id", "kind", "label", "prediction", "score", "uncertainty", "file", "attention"]


def select_videos(predictions: pd.DataFrame, task: Task, threshold: float | None, n: int,
                  kinds: list[str] | None = None) -> pd.DataFrame:
    """`n` test videos, taken in turn from the lists of `kinds` (gradcam.select; None = the task's
    default), each video at most once.

    Args:
        predictions: the fold's test predictions.
        task: which ranks the candidates (Task.cam_candidates).
        threshold: the fold's decision threshold (binary), else None.
        n: how many videos to pick.
        kinds: gradcam.select; None = the task's cam_kinds.
    """
    candidates = task.cam_candidates(predictions, threshold, kinds)
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


def clip_cam(model: torch.nn.Module, clip: torch.Tensor, target_output: int, layer: str) -> np.ndarray:
    """[T, H, W] CAM in [0, 1], min-max scaled over the whole clip (not per frame), computed on the
    model's device."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=model, target_layers=[get_module(model, layer)],
                 reshape_transform=getattr(model, "cam_reshape", None)) as cam:
        heat = cam(input_tensor=clip[None].to(next(model.parameters()).device),
                   targets=[ClassifierOutputTarget(target_output)])
    return heat[0]


def overlay(frames: np.ndarray, heat: np.ndarray, caption: str, scale: int = 4) -> np.ndarray:
    """[T, H, W, C] uint8 + [T, H, W] heat -> [T, H*s, 2*W*s, 3] side-by-side RGB frames."""
    out = []
    for frame, cam in zip(frames, heat):
        rgb = frame if frame.shape[-1] == 3 else np.repeat(frame, 3, axis=-1)
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        cam = cv2.resize(cam, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        colour = cv2.cvtColor(cv2.applyColorMap(np.uint8(255 * cam), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        blend = (0.55 * rgb + 0.45 * colour).astype(np.uint8)
        panel = np.concatenate([rgb, blend], axis=1)
        cv2.putText(panel, caption, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
        out.append(panel)
    return np.stack(out)


def write_panels(path_stem: Path, panels: np.ndarray, fps: float) -> str:
    """An MP4 of the panels, or a PNG when there is one frame (an image); returns the file name."""
    if len(panels) == 1:
        ok, data = cv2.imencode(".png", cv2.cvtColor(panels[0], cv2.COLOR_RGB2BGR))
        with atomic_path(path_stem.with_suffix(".png")) as tmp:
            Path(tmp).write_bytes(data.tobytes())
        return path_stem.with_suffix(".png").name
    write_mp4(path_stem.with_suffix(".mp4"), panels, fps)
    return path_stem.with_suffix(".mp4").name


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
    model, ckpt = load_model(model_path)
    model.to(device)
    task, norm, spec = Task.from_dict(ckpt["task"]), ckpt["normalisation"], ckpt["model"]
    layer = cfg.target_layer or model.cam_layer
    chosen = select_videos(predictions, task, threshold, cfg.n_videos, cfg.select)
    rows = []
    for pick in chosen.itertuples(index=False):
        video = manifest.loc[manifest["video_id"] == pick.video_id].iloc[0]
        frames = video_frames(video)
        raw = read_clip(frames, eval_clips(int(video["n_frames"]), ClipSpec.of(spec), 1)[0])
        clip = to_tensor(raw, norm["mean"], norm["std"]).to(device)  # for clip_attention too
        heat = clip_cam(model, clip, task.cam_output(pick.prediction, ckpt["output"]), layer)
        name = write_panels(out_dir / str(pick.video_id), overlay(raw, heat, task.caption(pick)), cfg.fps)
        weights, attention = clip_attention(model, clip), ""
        if weights is not None:
            attention = f"{pick.video_id}.attention.png"
            save_png(attention_figure(weights, f"{pick.video_id}: temporal attention"), out_dir / attention)
        rows.append(dict(video_id=pick.video_id, kind=pick.kind, label=pick.label, prediction=pick.prediction,
                         score=float(pick.score), uncertainty=float(pick.uncertainty), file=name,
                         attention=attention))
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    write_csv(out_dir / "index.csv", index)
    return index
