"""Across folds: mean, sd and per-fold values of every scalar metric."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


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
    summary = {"folds": [m["fold"] for m in fold_metrics], "metrics": table,
               "thresholds": [m["threshold"] for m in fold_metrics]}
    if "confusion_matrix" in fold_metrics[0]["metrics"]:
        summary["confusion_matrix"] = np.sum([m["metrics"]["confusion_matrix"] for m in fold_metrics],
                                             axis=0).tolist()
    return summary


def summarize_files(paths: list[str | Path]) -> dict:
    metrics = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            metrics.append(json.load(fh))
    return summarize(metrics)
