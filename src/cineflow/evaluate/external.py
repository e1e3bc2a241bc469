"""Does it hold on another hospital's data? External validation of a model's frozen fold ensemble.

The external videos are read with the training's frame-cache settings (from the checkpoint), scored by the
fold models as they are (the mean of their scores), and decided with the folds' val-tuned thresholds (their
mean): nothing about the external set feeds back into training, thresholds or normalisation. The same
metrics and patient-level CIs as the pooled out-of-fold results are computed, the input checks compare the
external videos with the model's training manifest, and every row carries the input-shift warning.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import torch

from cineflow.config import EvalConfig
from cineflow.evaluate.aggregate import unit_results
from cineflow.evaluate.predict import predict_new_videos
from cineflow.models.trained import preprocess_of
from cineflow.tasks import Task

# (manifest column, what it is) of the input checks between the training and the external videos
CHECKED = [("source_fps", "frame rate"), ("height", "frame height"), ("width", "frame width"),
           ("channels", "channels of the source"), ("source_frames", "frames per video")]


def value_range(values: pd.Series) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return "–"
    lo, hi = float(values.min()), float(values.max())
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


def reason_counts(reasons: pd.Series) -> dict[str, int]:
    """How many videos each kind of shift reason flags ("intensity histogram distance 0.18 > 0.10" is of the
    kind "intensity histogram distance")."""
    kinds = [re.split(r"\s[-\d.]", part.strip())[0] for text in reasons.fillna("") for part in text.split(";")
             if part.strip()]
    return {k: int(n) for k, n in pd.Series(kinds, dtype=str).value_counts().sort_index().items()}


def input_checks(training: pd.DataFrame, external: pd.DataFrame, classes: list[str], labels: pd.Series,
                 preprocess: dict) -> list[dict]:
    """What differs between the training and the external videos: the source frame rate, size, channels and
    length (both read with the training's cache settings, so a difference is reported, not fatal), and the
    classes (an external set without a class gives no ranking metric for it).

    Args:
        training: the model's training manifest.
        external: the external videos' cache rows.
        classes: the model's classes.
        labels: the external videos' labels.
        preprocess: the training's frame-cache settings (from the checkpoint).
    """
    checks = []
    for column, name in CHECKED:
        train, ext = value_range(training[column]), value_range(external[column])
        lo, hi = pd.to_numeric(training[column]).min(), pd.to_numeric(training[column]).max()
        inside = pd.to_numeric(external[column]).between(lo, hi).all() if len(external) else True
        checks.append({"check": name, "training": train, "external": ext, "status": "ok" if inside else "differs"})
    colour = preprocess.get("color", "?")
    checks.append({"check": "colour (as cached)", "training": colour, "external": colour, "status": "ok",
                   "note": "external videos are converted as the training's were"})
    present = sorted(set(labels))
    absent = [c for c in classes if c not in present]
    checks.append({"check": "classes", "training": ", ".join(classes), "external": ", ".join(present),
                   "status": "differs" if absent else "ok",
                   **({"note": f"no external video of {absent}"} if absent else {})})
    return checks


def validate_external(table: pd.DataFrame, root: str | Path, model_paths: list[str | Path],
                      fold_metrics: list[dict], references: list[str | Path], training: pd.DataFrame,
                      cfg: EvalConfig, work_dir: str | Path, device: torch.device, seed: int
                      ) -> tuple[dict, pd.DataFrame]:
    """(metrics.json content, predictions table) of a model's fold ensemble on an external set.

    Args:
        table: the external set's checked labels table (labels.validate).
        root: the folder its paths are relative to.
        model_paths: the fold models' checkpoints.
        fold_metrics: their metrics.json contents (the thresholds).
        references: their input-shift references.
        training: the model's training manifest (for the input checks).
        cfg: the evaluate section.
        work_dir: where the external videos are cached while they are scored.
        device: where the models run.
        seed: seeds MC dropout and the bootstrap.
    """
    predicted = predict_new_videos(table[["video_id", "path"]], model_paths, fold_metrics, cfg, work_dir, device,
                                   seed, references=references, root=root)
    task = Task.from_dict(fold_metrics[0]["task"])
    ok = predicted[predicted["status"] == "ok"].reset_index(drop=True)
    skipped = predicted.loc[predicted["status"] != "ok", ["video_id", "path", "reason"]].to_dict("records")
    if ok.empty:
        raise ValueError(f"none of the {len(table)} external videos could be read: {skipped[:3]}")
    rows = ok[["video_id"]].merge(table, on="video_id", how="left", validate="one_to_one")
    threshold = ok["threshold"].iloc[0] if "threshold" in ok else None
    out = task.table(rows, task.targets(rows), task.scores_of(ok), None, threshold)
    out["uncertainty"] = ok["uncertainty"].to_numpy(dtype=float)  # the fold models' MC spread, as predicted
    extra = ["fold_sd", "shift_score", "in_distribution", "shift_reasons"]
    out = out.merge(ok[["video_id", *[c for c in extra if c in ok]]], on="video_id", how="left")
    by = cfg.aggregate.get("by")
    if by and by not in out and by in rows:
        out[by] = rows[by].to_numpy()
    pooled = task.pooled(out, cfg, seed)
    metrics = {"task": task.as_dict(),
               "threshold": None if threshold is None else float(threshold), "n_models": len(model_paths),
               **pooled, "skipped": skipped, "n_skipped": len(skipped),
               "shift": {"n_out_of_distribution": int((~out["in_distribution"].astype(bool)).sum()),
                         "fraction_in_distribution": float(out["in_distribution"].astype(bool).mean()),
                         "reasons": reason_counts(out["shift_reasons"])},
               "checks": input_checks(training, ok, list(task.classes), rows["label"],
                                      preprocess_of(training) or {})}
    patients = unit_results(task, out, cfg, seed)
    if patients is not None:
        metrics["patient_level"] = patients
    return metrics, out
