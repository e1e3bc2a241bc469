"""Frozen-embedding probes: a frozen encoder's clip embeddings computed once per encoder (`embed_encoder`, a GPU
job), and a head fitted per fold on them in seconds (`fit_probe`, a CPU job), written as an ordinary fold
checkpoint: the probe module (models.probe) with a reference to the encoder weights the embeddings came from,
so every later stage runs it like a trained model."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cineflow.config import ModelConfig
from cineflow.data.normalisation import model_normalisation
from cineflow.data.sampling import ClipSpec
from cineflow.data.splits import fold_rows
from cineflow.data.store import video_frames
from cineflow.io import atomic_path, write_csv
from cineflow.models.architectures import build_model, stem_channels
from cineflow.models.inference import embed_videos
from cineflow.models.losses import LOSSES, n_outputs, to_scores
from cineflow.models.trained import TrainedModel, preprocess_of
from cineflow.provenance import file_sha256
from cineflow.train.fold import FoldPaths, model_task


def embed_encoder(encoder: ModelConfig, manifest: pd.DataFrame, n_clips: int | str, device: torch.device,
                  block: int, seed: int, out: str | Path, weights_out: str | Path) -> np.ndarray:
    """Every cached video's embedding under the frozen `encoder`, averaged over its evaluation clips, written to
    `out` (npz: video_id, embedding [N, D]); the encoder's weights (its untrained initialisation is seeded)
    to `weights_out`, which the probes' checkpoints refer to. Returns the embeddings.

    Args:
        encoder: the encoders: entry.
        manifest: the encoder's cache manifest (all videos: the encoder never sees a label).
        n_clips: evaluate.eval_clips.
        device: where the encoder runs.
        block: clips per forward pass.
        seed: the run's seed (an encoder without weights is a seeded random network).
        out: the embeddings file.
        weights_out: the encoder's state-dict file.
    """
    channels = int(manifest["channels"].iloc[0])
    norm = model_normalisation(encoder.normalise, channels)
    size = (encoder.clip_length, *video_frames(manifest.iloc[0]).shape[1:3])
    torch.manual_seed(seed)
    model = build_model(encoder.arch, 1, stem_channels(channels, encoder.pretrained, encoder.weights),
                        encoder.pretrained, encoder.weights, size, weights_strict=encoder.weights_strict,
                        **encoder.arch_params).to(device)
    embeddings = embed_videos(model, manifest, norm["mean"], norm["std"], ClipSpec.of(encoder), n_clips, device,
                              block).astype(np.float32)
    with atomic_path(weights_out) as tmp:
        torch.save(model.state_dict(), tmp)
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez(tmp, video_id=np.asarray(manifest["video_id"].astype(str), dtype=str), embedding=embeddings)
    return embeddings


def read_embeddings(path: str | Path) -> pd.DataFrame:
    """The embeddings file as a table indexed by video_id (arrays only: nothing is unpickled)."""
    with np.load(path, allow_pickle=False) as data:
        return pd.DataFrame(data["embedding"], index=pd.Index(data["video_id"], name="video_id"))


def fit_head(kind: str, settings: dict, x: np.ndarray, y: np.ndarray, classification: bool, outputs: int,
             seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fit the probe head with scikit-learn on standard-scaled embeddings; returns its layers as (weight [out,
    in], bias [out]) with the scaling folded into the first, so the layers take raw embeddings.

    A binary classifier's single decision value z becomes the logits (0, z) where the task has two outputs
    (softmax of them is sigmoid(z)).

    Args:
        kind: logistic, ridge or mlp.
        settings: models.<name>.probe (C, alpha, hidden, max_iter).
        x: [N, D] train embeddings.
        y: train targets (class indices, or values).
        classification: the task's kind.
        outputs: the head's outputs (n_outputs of the task's loss).
        seed: the mlp's initialisation.
    """
    from sklearn import linear_model, neural_network

    mean, scale = x.mean(0), np.maximum(x.std(0), 1e-6)
    z = (x - mean) / scale
    if kind == "logistic":
        fitted = linear_model.LogisticRegression(C=settings["C"], max_iter=settings["max_iter"]).fit(z, y)
        layers = [(fitted.coef_, fitted.intercept_)]
    elif kind == "ridge":
        fitted = linear_model.Ridge(alpha=settings["alpha"]).fit(z, y)
        layers = [(np.atleast_2d(fitted.coef_), np.atleast_1d(fitted.intercept_))]
    else:
        cls = neural_network.MLPClassifier if classification else neural_network.MLPRegressor
        fitted = cls(hidden_layer_sizes=(settings["hidden"],), alpha=settings["alpha"], max_iter=settings["max_iter"],
                     random_state=seed).fit(z, y)
        layers = [(w.T, b) for w, b in zip(fitted.coefs_, fitted.intercepts_)]
    weight, bias = layers[-1]
    if classification and weight.shape[0] == 1 and outputs == 2:
        layers[-1] = (np.vstack([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias]))
    first_w, first_b = layers[0]
    layers[0] = (first_w / scale, first_b - first_w @ (mean / scale))
    return layers


def fit_probe(cfg: ModelConfig, classes: list[str], split: pd.DataFrame, manifest: pd.DataFrame,
              embeddings: str | Path, encoder_weights: str | Path, paths: FoldPaths, seed: int,
              provenance: dict | None = None) -> pd.DataFrame:
    """Fit a probe on one fold: its head on the train videos' embeddings, scored on the val videos'; writes the
    fold's checkpoints (the head, with a reference to `encoder_weights` and its SHA-256) and a one-row history.

    Args:
        cfg: the probe model's entry (config.expand_probes filled it from its encoder).
        classes: data.classes.
        split: the fold's split table.
        manifest: the encoder's cache manifest.
        embeddings: embed_encoder's file.
        encoder_weights: embed_encoder's weights file.
        paths: where the fold's files go (the resume state is not used: a fit takes seconds).
        seed: the run's seed.
        provenance: the block the checkpoints carry.
    """
    tic = time.time()
    task, loss, monitor = model_task(cfg, classes)
    table = read_embeddings(embeddings)
    train_rows, val_rows = (fold_rows(split, manifest, p) for p in ("train", "val"))
    x_train, x_val = (table.loc[rows["video_id"].astype(str)].to_numpy(np.float64) for rows in (train_rows, val_rows))
    y_train, y_val = task.targets(train_rows), task.targets(val_rows)
    classification = cfg.task == "classification"
    outputs = n_outputs(loss, len(classes))
    channels = int(manifest["channels"].iloc[0])
    record = TrainedModel(
        spec=cfg, task=task, loss=loss, output=LOSSES.meta(loss)["output"], monitor=monitor, n_outputs=outputs,
        in_channels=stem_channels(channels, cfg.pretrained, cfg.weights),
        input_size=(cfg.clip_length, *map(int, video_frames(train_rows.iloc[0]).shape[1:3])),
        normalisation=model_normalisation(cfg.normalise, channels), preprocess=preprocess_of(manifest),
        provenance=provenance or {},
        base_weights={"path": str(encoder_weights), "sha256": file_sha256(encoder_weights)})
    torch.manual_seed(seed)
    module = record.build()
    layers = fit_head(cfg.probe["head"], cfg.probe, x_train, y_train, classification, outputs, seed)
    linears = [m for m in module.head.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for linear, (weight, bias) in zip(linears, layers):
            linear.weight.copy_(torch.as_tensor(weight)), linear.bias.copy_(torch.as_tensor(bias))
        val_scores = to_scores(module.head(torch.tensor(x_val, dtype=torch.float32)), record.output).numpy()
    scores = task.val_metrics(y_val, val_scores)
    history = pd.DataFrame([{"epoch": 1, "step": 1, "stage": 1, "trains": "head (probe)", "train_loss": float("nan"),
                             "val_loss": scores["loss"], **{f"val_{k}": v for k, v in scores.items() if k != "loss"},
                             "lr": float("nan"), "seconds": round(time.time() - tic, 3)}])
    state = module.state_dict()
    for target, progress in ((paths.model, {"best_epoch": 1, "best_step": 1, "best_score": scores[monitor]}),
                             (paths.last, {"epoch": 1, "step": 1})):
        replace(record, progress=progress).save(target, state, module)
    write_csv(paths.history, history)
    return history
