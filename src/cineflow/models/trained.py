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
from cineflow.provenance import file_sha256
from cineflow.models.adapters import base_keys
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
    base_weights: dict | None = None  # {path, sha256} of the weights file an adapter model's frozen base comes from
    module: torch.nn.Module | None = field(default=None, compare=False, repr=False)

    @property
    def classes(self) -> list[str]:
        return list(self.task.classes)

    @property
    def clip_spec(self) -> ClipSpec:
        return ClipSpec.of(self.spec)

    def build(self) -> torch.nn.Module:
        """The architecture, untrained, at the geometry it was trained at (no weights are fetched), with its
        adapters on the base weights file where the checkpoint refers to one (checked against its SHA-256)."""
        spec, base = self.spec, self.base_weights
        if base is not None:
            if not Path(base["path"]).is_file() or file_sha256(base["path"]) != base["sha256"]:
                raise FileNotFoundError(f"the adapter checkpoint's base weights {base['path']} are missing or changed "
                                        f"(SHA-256 {base['sha256'][:12]}...): put the file it was trained on back")
        return build_model(spec.arch, n_outputs=self.n_outputs, in_channels=self.in_channels, pretrained=False,
                           weights=base and base["path"], input_size=self.input_size,
                           weights_strict=spec.weights_strict, fuse_directions=spec.fuse_directions,
                           fuse_params=spec.fuse_params, adapter=spec.adapter, **spec.arch_params)

    def save(self, path: str | Path, state_dict: dict, module: torch.nn.Module | None = None) -> None:
        """Write the record with `state_dict` as one checkpoint file, atomically. An adapter model whose base is a
        weights file (`base_weights`) keeps the adapters and the head only: `module` (the trained model) says
        which keys are the frozen base's."""
        if self.base_weights is not None and module is not None:
            frozen = base_keys(module)
            state_dict = {k: v for k, v in state_dict.items() if k not in frozen}
        payload = {"model": asdict(self.spec), "task": self.task.as_dict(), "classes": self.classes,
                   "loss": self.loss, "output": self.output, "monitor": self.monitor, "n_outputs": self.n_outputs,
                   "in_channels": self.in_channels, "input_size": list(self.input_size),
                   "normalisation": self.normalisation, "preprocess": self.preprocess,
                   "provenance": self.provenance, **self.progress, "base_weights": self.base_weights,
                   "state_dict": state_dict}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> "TrainedModel":
        """The record of checkpoint `path` with its module rebuilt, its weights loaded, in eval mode, on `device`."""
        ckpt = load_checkpoint(path)
        record = cls.of_checkpoint(ckpt)
        module = record.build()
        missing, unexpected = module.load_state_dict(ckpt["state_dict"], strict=record.base_weights is None)
        if unexpected or set(missing) - base_keys(module):
            raise ValueError(f"checkpoint {path} does not fit its adapter model: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
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
                   provenance=ckpt.get("provenance") or {}, progress=progress,
                   base_weights=ckpt.get("base_weights"))

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
