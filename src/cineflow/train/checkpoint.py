"""Checkpoints: weights plus everything needed to use them (architecture, task, normalisation, the frame
cache's settings, provenance), loadable with weights_only=True."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from cineflow.io import atomic_path
from cineflow.models.architectures import build_model


def save(path: str | Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model from its checkpoint (architecture, classes and normalisation travel with it)."""
    ckpt = load(path)
    spec = ckpt["model"]
    model = build_model(spec["arch"], n_outputs=ckpt["n_outputs"], in_channels=ckpt["in_channels"],
                        pretrained=False, weights=None, input_size=ckpt["input_size"],
                        fuse_directions=spec.get("fuse_directions"), **spec["arch_params"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt


def preprocess_of(manifest: pd.DataFrame) -> dict | None:
    """The frame-cache settings the model was trained on, so `predict` prepares new videos the same way."""
    if "preprocess" not in manifest or manifest.empty:
        return None
    return json.loads(manifest["preprocess"].iloc[0])
