"""Across folds: mean, sd and per-fold values of every scalar metric; the out-of-fold predictions of all
folds in one table, with pooled metrics and group-bootstrap CIs."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cineflow.config import EvalConfig
from cineflow.evaluate.tasks import Task
from cineflow.io import read_csv, read_json


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A fold's predictions.csv: ids and labels stay text ("NA" is an id), an empty uncertainty is NaN."""
    return read_csv(path, na_values={"uncertainty": [""]})


def summarize(fold_metrics: list[dict]) -> dict:
    """{"metrics": {name: {"mean", "std", "per_fold"}}, "confusion_matrix": summed over folds, ...}."""
    fold_metrics = sorted(fold_metrics, key=lambda m: m["fold"])
    names = [k for k, v in fold_metrics[0]["metrics"].items() if isinstance(v, (int, float))]
    table = {}
    for name in names:
        values = [float(m["metrics"][name]) for m in fold_metrics]
        finite = [v for v in values if not math.isnan(v)]
        table[name] = {
            "mean": float(np.mean(finite)) if finite else float("nan"),
            "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0,
            "per_fold": values,
        }
    summary = {"task": fold_metrics[0].get("task"), "folds": [m["fold"] for m in fold_metrics], "metrics": table,
               "thresholds": [m["threshold"] for m in fold_metrics]}
    if "confusion_matrix" in fold_metrics[0]["metrics"]:
        summary["confusion_matrix"] = np.sum([m["metrics"]["confusion_matrix"] for m in fold_metrics],
                                             axis=0).tolist()
    return summary


def out_of_fold(predictions: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Every fold's test predictions in one table (each video once, as a test video of one fold)."""
    return pd.concat([p.assign(fold=k) for k, p in sorted(predictions.items())], ignore_index=True)


def summarize_model(metric_paths: list[str | Path], prediction_paths: list[str | Path], cfg: EvalConfig,
                    seed: int) -> tuple[dict, pd.DataFrame]:
    """(summary.json content, out-of-fold predictions) of one model."""
    metrics = [read_json(p) for p in metric_paths]
    summary = summarize(metrics)
    oof = out_of_fold({m["fold"]: read_predictions(p) for m, p in zip(metrics, prediction_paths)})
    task = Task.of_metrics(metrics[0])
    summary["pooled"] = task.pooled(oof, cfg, seed)
    return summary, oof


def fold_files(model_paths: list[str | Path], metric_paths: list[str | Path], summary_path: str | Path) -> list[dict]:
    """Each fold's model and metrics file, relative to the summary's folder, for summary.json: what
    `cineflow-predict --summary` loads."""
    base = Path(summary_path).parent
    return [{"model": os.path.relpath(m, base), "metrics": os.path.relpath(x, base)}
            for m, x in zip(model_paths, metric_paths)]


def read_fold_files(summary_path: str | Path) -> tuple[list[Path], list[Path]]:
    """(fold model files, their metrics files) listed in a summary.json."""
    base = Path(summary_path).parent
    files = read_json(summary_path)["files"]
    return [base / f["model"] for f in files], [base / f["metrics"] for f in files]
