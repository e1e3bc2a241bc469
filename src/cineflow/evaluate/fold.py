"""Evaluate one fold: the task's metrics on test (binary: threshold tuned on val, applied unchanged),
clip- and video-level, optionally with MC dropout; per-video predictions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from cineflow.config import ConfigError, EvalConfig
from cineflow.data.splits import fold_rows, parse_fold
from cineflow.models.trained import TrainedModel


def evaluate_fold(model: str | Path | TrainedModel, split: pd.DataFrame, manifest: pd.DataFrame, cfg: EvalConfig,
                  device: torch.device, seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """(metrics dict, predictions table with one row per test video).

    Args:
        model: the fold's best checkpoint, or that checkpoint loaded.
        split: the fold's split table (video_id, partition).
        manifest: the cached videos with labels and targets.
        cfg: the evaluate section.
        device: where the model runs.
        seed: seeds the MC dropout passes.
    """
    trained = model if isinstance(model, TrainedModel) else TrainedModel.load(model, device)
    task, spec = trained.task, trained.spec

    def scores(rows: pd.DataFrame):
        return trained.score(rows, cfg.eval_clips, device, cfg.block, mc_passes=cfg.mc_dropout, seed=seed)

    val_rows, test_rows = fold_rows(split, manifest, "val"), fold_rows(split, manifest, "test")
    y_val, y_test = task.targets(val_rows), task.targets(test_rows)
    results, predictions = task.evaluate(y_val, scores(val_rows), y_test, scores(test_rows), test_rows, cfg)
    by = cfg.aggregate.get("by")
    if by and by not in predictions:  # the column patient-level results combine by travels with the predictions
        if by not in test_rows:
            raise ConfigError(f"evaluate/aggregate/by: '{by}' is neither group nor a column of the labels table "
                              f"({sorted(c for c in test_rows.columns if not c.startswith('_'))})")
        predictions[by] = test_rows[by].to_numpy()
    metrics = {
        "task": task.as_dict(), "loss": trained.loss, "monitor": trained.monitor,
        "n_test": int(len(test_rows)), "n_val": int(len(val_rows)),
        "eval_clips": cfg.eval_clips, "clip_sampling": spec.clip_sampling,
        "mc_dropout": cfg.mc_dropout, "best_epoch": trained.progress["best_epoch"], **results,
        "trained_on": trained.provenance.get("hardware", {}),
    }
    return metrics, predictions


def fold_record(model: str | Path | TrainedModel, split: pd.DataFrame, manifest: pd.DataFrame, cfg: EvalConfig,
                device: torch.device, *, seed: int, names: tuple[str, str], provenance: dict
                ) -> tuple[dict, pd.DataFrame]:
    """A fold's metrics.json record (what summarize, nested selection and the report read) and its predictions.

    One function for the evaluate rule and for an inner fold of nested selection, which its training job scores
    (rule train_inner: a job start saved per inner fold), so both records are the same.

    Args:
        model, split, manifest, cfg, device, seed: as for `evaluate_fold`.
        names: the model's name and the fold's (`2`, `2_r1`, `2i0`).
        provenance: the config, code and hardware the record carries.
    """
    metrics, predictions = evaluate_fold(model, split, manifest, cfg, device, seed=seed)
    repeat, fold = parse_fold(names[1])
    record = {"model": names[0], "fold": fold, "repeat": repeat, "name": names[1], **metrics,
              "provenance": provenance}
    return record, predictions
