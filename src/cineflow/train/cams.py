"""Grad-CAMs during training (models.<name>.gradcam_every), as the ANN vs NORMAL study writes its periodic
Grad-CAM videos: the same few val videos every N epochs, so that where the model looks can be followed as it
learns (a model that settles on a burned-in label or the sector's edge shows it early).

They are drawn on the cached frames (the source is not read during training) for the true class, by the same
code as the gradcam stage (models.cam). Rendering leaves the training as it was: the model's mode, its
gradients and the random streams are restored, so the weights trained are the same with or without them
(tests/test_trainer.py). The files go to the resume folder first, so that a killed and resumed job keeps the
epochs it drew, and reach the rule's output folder when the fold finishes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cineflow.data.clips import read_clip, to_tensor
from cineflow.data.sampling import eval_clips
from cineflow.data.store import video_frames
from cineflow.io import write_csv
from cineflow.models.cam import clip_cam, overlay, write_panels
from cineflow.models.inference import predict_videos
from cineflow.models.trained import TrainedModel
from cineflow.presentation import view_of
from cineflow.tasks import Task

INDEX_COLUMNS = ["epoch", "video_id", "label", "score", "file"]


def followed_videos(rows: pd.DataFrame, y: np.ndarray, task: Task, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(`n` val rows, their targets): one of each class in turn, the first by id of each (regression: the
    first `n` by id), so that every epoch shows the same videos."""
    order = np.argsort(rows["video_id"].to_numpy(), kind="stable")
    if task.name == "regression":
        picked = list(order[:n])
    else:
        queues = [[i for i in order if y[i] == c] for c in range(len(task.classes))]
        picked = []
        while len(picked) < n and any(queues):
            for queue in queues:
                if queue and len(picked) < n:
                    picked.append(queue.pop(0))
    return rows.iloc[picked].reset_index(drop=True), y[picked]


class TrainingCams:
    """The periodic Grad-CAMs of one fold.

    Args:
        staging: where they are drawn during training (beside the resume state).
        record: the fold's TrainedModel record (task, clip, normalisation, output).
        rows: the val partition's manifest rows.
        y: their targets.
        every: draw after every this many epochs.
        n_videos: how many val videos to follow.
        device: where the model runs.
    """

    def __init__(self, staging: str | Path, record: TrainedModel, rows: pd.DataFrame, y: np.ndarray, every: int,
                 n_videos: int, device: torch.device):
        self.staging, self.record, self.every, self.device = Path(staging), record, every, device
        self.rows, self.y = followed_videos(rows, y, record.task, n_videos)

    def due(self, epoch: int) -> bool:
        """Whether epoch `epoch` (1-based, just finished) gets its CAMs."""
        return self.every > 0 and epoch % self.every == 0

    def render(self, model: torch.nn.Module, epoch: int) -> None:
        """Draw the followed videos' CAMs for `model` after epoch `epoch` into staging/epoch_<e>/."""
        record, mode = self.record, model.training
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        rng = torch.random.get_rng_state()
        model.eval()
        try:
            norm = record.normalisation
            scores = predict_videos(model, self.rows, norm["mean"], norm["std"], record.clip_spec, 1, self.device,
                                    block=len(self.rows), output=record.output)
            rows = [self._draw(model, epoch, i, np.atleast_1d(scores[i])) for i in range(len(self.rows))]
            write_csv(self.staging / f"epoch_{epoch:03d}" / "index.csv", pd.DataFrame(rows, columns=INDEX_COLUMNS))
        finally:
            model.train(mode)
            model.zero_grad(set_to_none=True)
            for name, p in model.named_parameters():
                p.grad = grads.get(name)
            torch.random.set_rng_state(rng)

    def _draw(self, model: torch.nn.Module, epoch: int, i: int, score: np.ndarray) -> dict:
        record, video, target = self.record, self.rows.iloc[i], self.y[i]
        regression = record.task.name == "regression"
        label = float(target) if regression else record.classes[int(target)]
        value = float(score[0] if regression or len(score) != len(record.classes) else score[int(target)])
        caption = (f"epoch {epoch} | true {label:.1f} | pred {value:.1f}" if regression
                   else f"epoch {epoch} | true {label} | p({label})={value:.2f}")
        indices = eval_clips(int(video["n_frames"]), record.clip_spec, 1)[0]
        raw = read_clip(video_frames(video), indices)
        clip = to_tensor(raw, record.normalisation["mean"], record.normalisation["std"]).to(self.device)
        layer = model.cam_layer
        heat = clip_cam(model, clip.requires_grad_(True), view_of(record.task).cam_output(label, record.output),
                        layer)
        valid = indices >= 0
        scale = max(1, min(4, 256 // raw.shape[2]))  # small cached frames, enlarged with their pixels kept
        shown = np.repeat(np.repeat(raw[valid], scale, axis=1), scale, axis=2)  # overlay() scales the maps
        fps = float(video["fps"]) / record.clip_spec.period if float(video["fps"]) > 0 else 10.0
        folder = self.staging / f"epoch_{epoch:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        name = write_panels(folder / str(video["video_id"]), overlay(shown, heat[valid], caption), fps)
        return {"epoch": epoch, "video_id": video["video_id"], "label": label, "score": value,
                "file": f"epoch_{epoch:03d}/{name}"}


def publish(staging: str | Path, out: str | Path | None) -> None:
    """Move the fold's drawn CAMs (all epochs) to the rule's output folder `out` (None: none wanted)."""
    if out is None:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    if Path(staging).is_dir():
        shutil.copytree(staging, out, dirs_exist_ok=True)
        shutil.rmtree(staging)
