"""Across folds: mean, sd and per-fold values of every scalar metric; the out-of-fold predictions of all
folds in one table, with pooled metrics and group-bootstrap CIs."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cineflow.config import EvalConfig
from cineflow.evaluate.aggregate import unit_results
from cineflow.io import read_csv, read_json
from cineflow.tasks import Task


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A fold's predictions.csv: ids and labels stay text ("NA" is an id), an empty uncertainty is NaN."""
    return read_csv(path, na_values={"uncertainty": [""]})


def fold_key(metrics: dict) -> tuple[int, int]:
    """(repeat, fold) of a fold's metrics.json (files without a repeat are repeat 0)."""
    return metrics.get("repeat", 0), metrics["fold"]


def first_repeat(oof: pd.DataFrame) -> pd.DataFrame:
    """Each video once: repeat 0 of a repeated cross-validation (all rows otherwise)."""
    return oof[oof["repeat"] == 0].reset_index(drop=True) if "repeat" in oof else oof.reset_index(drop=True)


def summarize(fold_metrics: list[dict]) -> dict:
    """{"metrics": {name: {"mean", "std", "per_fold"}}, "confusion_matrix": summed over the folds of repeat 0, ...}.

    With repeated cross-validation the mean and sd are over every fold of every repeat. With fewer than two
    finite fold values the sd is NaN (undefined), not 0: one fold says nothing about the spread."""
    fold_metrics = sorted(fold_metrics, key=fold_key)
    names = [k for k, v in fold_metrics[0]["metrics"].items() if isinstance(v, (int, float))]
    table = {}
    for name in names:
        values = [float(m["metrics"][name]) for m in fold_metrics]
        finite = [v for v in values if not math.isnan(v)]
        table[name] = {
            "mean": float(np.mean(finite)) if finite else float("nan"),
            "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan"),
            "per_fold": values,
        }
    summary = {"task": fold_metrics[0].get("task"), "folds": [m.get("name", m["fold"]) for m in fold_metrics],
               "metrics": table, "thresholds": [m["threshold"] for m in fold_metrics]}
    if "confusion_matrix" in fold_metrics[0]["metrics"]:
        summary["confusion_matrix"] = np.sum([m["metrics"]["confusion_matrix"] for m in fold_metrics
                                              if fold_key(m)[0] == 0], axis=0).tolist()
    return summary


def out_of_fold(predictions: dict[tuple[int, int], pd.DataFrame]) -> pd.DataFrame:
    """Every fold's test predictions in one table, with their `fold` and `repeat`: each video once per repeat,
    as a test video of one fold."""
    return pd.concat([p.assign(fold=k, repeat=r) for (r, k), p in sorted(predictions.items())], ignore_index=True)


def repeat_spread(task: Task, oof: pd.DataFrame, cfg: EvalConfig) -> dict:
    """Each headline metric of each repeat's pooled predictions, with their mean and sd: how much the numbers
    move with another split seed (beside the sd over folds, which mixes in the folds' sizes)."""
    per_repeat = []
    for _, part in sorted(oof.groupby("repeat"), key=lambda kv: kv[0]):
        per_repeat.append(task.headline_metrics(part.reset_index(drop=True)))
    return {m: {"mean": float(np.nanmean([r[m] for r in per_repeat])),
                "std": float(np.nanstd([r[m] for r in per_repeat], ddof=1)),
                "per_repeat": [float(r[m]) for r in per_repeat]} for m in task.headline}


def summarize_model(metric_paths: list[str | Path], prediction_paths: list[str | Path], cfg: EvalConfig,
                    seed: int) -> tuple[dict, pd.DataFrame]:
    """(summary.json content, out-of-fold predictions) of one model."""
    metrics = [read_json(p) for p in metric_paths]
    summary = summarize(metrics)
    oof = out_of_fold({fold_key(m): read_predictions(p) for m, p in zip(metrics, prediction_paths)})
    task = Task.from_dict(metrics[0]["task"])
    summary["pooled"] = task.pooled(first_repeat(oof), cfg, seed)
    patients = unit_results(task, first_repeat(oof), cfg, seed)
    if patients is not None:
        summary["patient_level"] = patients
    pooled_calibration = task.calibration_summary(first_repeat(oof), cfg)
    if pooled_calibration is not None:
        summary["calibration"] = {"method": cfg.calibration, "folds": [m.get("calibration") for m in
                                                                       sorted(metrics, key=fold_key)],
                                  "pooled": pooled_calibration}
    if oof["repeat"].nunique() > 1:
        summary["repeats"] = repeat_spread(task, oof, cfg)
    return summary, oof


def fold_files(model_paths: list[str | Path], metric_paths: list[str | Path], reference_paths: list[str | Path],
               summary_path: str | Path) -> list[dict]:
    """Each fold's model, metrics and input-shift reference file, relative to the summary's folder, for
    summary.json: what `cineflow-predict --summary` loads."""
    base = Path(summary_path).parent
    return [{"model": os.path.relpath(m, base), "metrics": os.path.relpath(x, base),
             "shift_reference": os.path.relpath(r, base)}
            for m, x, r in zip(model_paths, metric_paths, reference_paths)]


def read_fold_files(summary_path: str | Path) -> tuple[list[Path], list[Path], list[Path] | None]:
    """(fold model files, their metrics files, their shift references or None where the summary lists none)
    listed in a summary.json."""
    base = Path(summary_path).parent
    files = read_json(summary_path)["files"]
    references = [base / f["shift_reference"] for f in files] if all("shift_reference" in f for f in files) else None
    return [base / f["model"] for f in files], [base / f["metrics"] for f in files], references
