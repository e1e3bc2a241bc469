"""Does it work equally for women and men, across vendors and sites? The headline metrics of the pooled
out-of-fold predictions within each value of each data.subgroups column, with patient-level CIs.

A subgroup with fewer patients than evaluate.min_subgroup gets its metrics but no CI, and says so: a
percentile interval from a handful of patients would look more certain than it is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cineflow.config import EvalConfig
from cineflow.evaluate.aggregate import units
from cineflow.evaluate.summary import first_repeat
from cineflow.tasks import Task
from cineflow.tasks.resampled import group_bootstrap


def headline_of(task: Task, table: pd.DataFrame, cfg: EvalConfig, seed: int, min_groups: int) -> dict:
    """n, patients, the headline metrics and their patient-level CIs (None below `min_groups` patients) of the
    predictions `table` (each row with its fold's threshold)."""
    n_groups = int(table["group"].nunique())
    out = {"n": int(len(table)), "n_groups": n_groups, "metrics": task.headline_metrics(table),
           "ci": None, "nan_draws": {}, "note": None}
    if n_groups < min_groups:
        out["note"] = f"{n_groups} patient(s): too few for a CI (evaluate.min_subgroup is {min_groups})"
    elif cfg.bootstrap:
        out["ci"], out["nan_draws"] = group_bootstrap(table["group"].to_numpy(), task.headline_draws(table),
                                                      cfg.bootstrap, seed)
    undefined = task.undefined_note(table)
    if undefined:
        out["note"] = ((out["note"] + "; ") if out["note"] else "") + undefined
    return out


def subgroup_metrics(task: Task, oof: pd.DataFrame, attributes: pd.DataFrame, columns: list[str],
                     cfg: EvalConfig, seed: int) -> dict:
    """results/<model>/subgroups.json: overall and per-subgroup headline metrics.

    Args:
        task: the model's task.
        oof: its out-of-fold predictions.
        attributes: video_id and the subgroup columns (the manifest).
        columns: data.subgroups.
        cfg: the evaluate section (bootstrap, min_subgroup).
        seed: seeds the bootstrap.
    """
    table = first_repeat(oof).merge(attributes[["video_id", *columns]], on="video_id", how="left",
                                    validate="many_to_one")
    out = {"task": task.name, "headline": list(task.headline), "min_subgroup": cfg.min_subgroup,
           "overall": both_levels(task, table, cfg, seed), "subgroups": {}}
    for column in columns:
        values = table[column].fillna("missing").astype(str)
        out["subgroups"][column] = [
            {"value": value, **both_levels(task, table[values == value].reset_index(drop=True), cfg, seed)}
            for value in sorted(values.unique())]
    return out


def both_levels(task: Task, table: pd.DataFrame, cfg: EvalConfig, seed: int) -> dict:
    """`headline_of` the videos, and of their patients (evaluate.aggregate) under `patient_level`: there, only
    why, where the unit level is skipped (cineflow.evaluate.aggregate)."""
    out = headline_of(task, table, cfg, seed, cfg.min_subgroup)
    found = units(task, table, cfg.aggregate)
    if found is not None:
        out["patient_level"] = {**found.record(), **({} if found.skipped else
                                                     headline_of(task, found.table, cfg, seed, cfg.min_subgroup))}
    return out
