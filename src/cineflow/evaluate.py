"""Evaluate one fold: threshold tuned on val, applied unchanged to test; per-video predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .checkpoint import load_model
from .config import EvalConfig
from .inference import predict_videos
from .metrics import binary_metrics, tune_threshold
from .sampling import ClipSpec
from .trainer import fold_rows, targets


def evaluate_fold(model_path: str | Path, split: pd.DataFrame, manifest: pd.DataFrame, cfg: EvalConfig,
                  device: torch.device) -> tuple[dict, pd.DataFrame]:
    """(metrics dict, predictions table with one row per test video)."""
    model, ckpt = load_model(model_path)
    model.to(device)
    classes, norm, spec = ckpt["classes"], ckpt["normalisation"], ckpt["model"]

    def scores(rows: pd.DataFrame) -> np.ndarray:
        return predict_videos(model, rows, norm["mean"], norm["std"], ClipSpec.of(spec), cfg.eval_clips, device,
                              block=cfg.block)

    val_rows, test_rows = fold_rows(split, manifest, "val"), fold_rows(split, manifest, "test")
    val_probs, test_probs = scores(val_rows), scores(test_rows)
    y_val, y_test = targets(val_rows, classes), targets(test_rows, classes)
    if len(classes) != 2:
        raise NotImplementedError("the spine evaluates binary tasks; multiclass/regression come with the model zoo")
    threshold = tune_threshold(y_val, val_probs[:, 1], cfg.threshold)
    pred = (test_probs[:, 1] >= threshold).astype(int)
    predictions = pd.DataFrame({
        "video_id": test_rows["video_id"], "group": test_rows["group"], "label": test_rows["label"],
        **{f"score_{c}": test_probs[:, i] for i, c in enumerate(classes)},
        "score": test_probs[:, 1], "prediction": [classes[p] for p in pred], "correct": pred == y_test,
    })
    metrics = {
        "task": "binary", "positive_class": classes[1], "classes": list(classes),
        "n_test": int(len(test_rows)), "n_val": int(len(val_rows)),
        "threshold": float(threshold), "threshold_rule": cfg.threshold,
        "eval_clips": cfg.eval_clips, "clip_sampling": spec.get("clip_sampling", "random"),
        "best_epoch": ckpt["best_epoch"],
        "metrics": binary_metrics(y_test, test_probs[:, 1], threshold),
        "val_metrics": binary_metrics(y_val, val_probs[:, 1], threshold),
    }
    return metrics, predictions
