"""The trained-model record: a fold's weights with everything needed to use them (architecture, task,
normalisation, the frame cache's settings, provenance). Training writes it once; evaluation, Grad-CAM, the
input-shift reference, external validation and prediction read it here and nowhere else.

Checkpoints load with weights_only=True: nothing in a checkpoint is unpickled as code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cineflow.config import ModelConfig, schema_default
from cineflow.data.sampling import ClipSpec
from cineflow.io import atomic_path
from cineflow.models.architectures import build_model
from cineflow.models.inference import VideoScores, embed_videos, score_videos
from cineflow.tasks import Task


@dataclass(frozen=True)
class TrainedModel:
    """One fold's model as later stages use it.

    `progress` says which weights these are: best_epoch, best_step and best_score for the selected
    checkpoint (model.pt), epoch and step for the last one (last.pt). `module` is the rebuilt network in
    eval mode (None for a record that has not been loaded).
    """

    spec: ModelConfig
    task: Task
    loss: str
    output: str  # how the outputs read: softmax, sigmoid or identity (losses' metadata)
    monitor: str
    n_outputs: int
    in_channels: int
    input_size: tuple[int, ...]  # (T, H, W) of the clips it was built for
    normalisation: dict  # {"mean": [...], "std": [...]} per channel
    preprocess: dict | None  # the frame cache's settings (data.cache.cache_config), None for old manifests
    provenance: dict = field(default_factory=dict)
    progress: dict = field(default_factory=dict)
    module: torch.nn.Module | None = field(default=None, compare=False, repr=False)

    @property
    def classes(self) -> list[str]:
        return list(self.task.classes)

    @property
    def clip_spec(self) -> ClipSpec:
        return ClipSpec.of(self.spec)

    def build(self) -> torch.nn.Module:
        """The architecture, untrained, at the geometry it was trained at (no weights are fetched)."""
        spec = self.spec
        return build_model(spec.arch, n_outputs=self.n_outputs, in_channels=self.in_channels, pretrained=False,
                           weights=None, input_size=self.input_size, fuse_directions=spec.fuse_directions,
                           fuse_params=spec.fuse_params,
                           **spec.arch_params)

    def save(self, path: str | Path, state_dict: dict) -> None:
        """Write the record with `state_dict` as one checkpoint file, atomically."""
        payload = {"model": asdict(self.spec), "task": self.task.as_dict(), "classes": self.classes,
                   "loss": self.loss, "output": self.output, "monitor": self.monitor, "n_outputs": self.n_outputs,
                   "in_channels": self.in_channels, "input_size": list(self.input_size),
                   "normalisation": self.normalisation, "preprocess": self.preprocess,
                   "provenance": self.provenance, **self.progress, "state_dict": state_dict}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> "TrainedModel":
        """The record of checkpoint `path` with its module rebuilt, its weights loaded, in eval mode, on `device`."""
        ckpt = load_checkpoint(path)
        record = cls.of_checkpoint(ckpt)
        module = record.build()
        module.load_state_dict(ckpt["state_dict"])
        module.eval()
        module.to(device)
        return replace(record, module=module)

    @classmethod
    def of_checkpoint(cls, ckpt: dict) -> "TrainedModel":
        """The record of a loaded checkpoint dict, without building the module."""
        progress = {k: ckpt[k] for k in PROGRESS if k in ckpt}
        return cls(spec=saved_spec(ckpt["model"]), task=Task.from_dict(ckpt["task"]), loss=ckpt["loss"],
                   output=ckpt["output"], monitor=ckpt["monitor"], n_outputs=ckpt["n_outputs"],
                   in_channels=ckpt["in_channels"], input_size=tuple(ckpt["input_size"]),
                   normalisation=ckpt["normalisation"], preprocess=ckpt.get("preprocess"),
                   provenance=ckpt.get("provenance") or {}, progress=progress)

    def score(self, rows: pd.DataFrame, n_clips: int | str, device: torch.device, block: int,
              mc_passes: int = 0, seed: int = 0) -> VideoScores:
        """Clip and video scores of manifest `rows` (models.inference.score_videos with this model's
        normalisation, clip spec and output)."""
        norm = self.normalisation
        return score_videos(self.module, rows, norm["mean"], norm["std"], self.clip_spec, n_clips, device,
                            block=block, output=self.output, mc_passes=mc_passes, seed=seed)

    def embed(self, rows: pd.DataFrame, n_clips: int | str, device: torch.device, block: int) -> np.ndarray:
        """[N, D] embeddings of manifest `rows` (models.inference.embed_videos)."""
        norm = self.normalisation
        return embed_videos(self.module, rows, norm["mean"], norm["std"], self.clip_spec, n_clips, device, block)


PROGRESS = ("best_epoch", "best_step", "best_score", "epoch", "step")


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint file as the dict it was saved as (tensors on the CPU; weights_only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def preprocess_of(manifest: pd.DataFrame) -> dict | None:
    """The frame-cache settings the model was trained on, so `predict` prepares new videos the same way."""
    if "preprocess" not in manifest or manifest.empty:
        return None
    return json.loads(manifest["preprocess"].iloc[0])


def saved_spec(saved: dict) -> ModelConfig:
    """A checkpoint's model settings; a key added to the schema after the checkpoint was written takes the
    schema's default, so older checkpoints still load."""
    missing = {f.name for f in fields(ModelConfig)} - set(saved)
    return ModelConfig.from_dict({**{key: schema_default("models", "*", key) for key in missing}, **saved})
