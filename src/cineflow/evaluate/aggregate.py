"""Patient- (or study-) level results beside the video-level ones (evaluate.aggregate).

A clinician decides per patient, and a patient usually has several clips: the video-level figures count a
patient with five clips five times. Each unit's videos' scores are combined (Task.aggregate) and the unit is
scored like a video: metrics, patient-bootstrap CIs, decision curve. Units whose videos disagree on the truth
are left out and listed.
"""

from __future__ import annotations

import pandas as pd

from cineflow.config import EvalConfig
from cineflow.tasks import Task


def units(task: Task, table: pd.DataFrame, cfg: EvalConfig) -> tuple[pd.DataFrame, list] | None:
    """(the predictions at the unit level, the units left out), or None where evaluate.aggregate.by is null."""
    by = cfg.aggregate.get("by")
    return None if not by else task.aggregate(table, by, cfg.aggregate["how"])


def unit_results(task: Task, table: pd.DataFrame, cfg: EvalConfig, seed: int) -> dict | None:
    """The pooled results (Task.pooled) of the unit-level predictions of `table`, with what they combine by,
    how, and the units left out; None where evaluate.aggregate.by is null."""
    found = units(task, table, cfg)
    if found is None:
        return None
    unit_table, left_out = found
    return {"by": cfg.aggregate["by"], "how": cfg.aggregate["how"], "left_out": left_out,
            "n_left_out": len(left_out), **task.pooled(unit_table, cfg, seed)}
