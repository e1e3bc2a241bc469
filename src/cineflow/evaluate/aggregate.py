"""Patient- (or study-) level results beside the video-level ones (evaluate.aggregate).

A clinician decides per patient, and a patient usually has several clips: the video-level figures count a
patient with five clips five times. Each unit's videos' scores are combined (Task.aggregate) and the unit is
scored like a video: metrics, patient-bootstrap CIs, decision curve. Units whose videos disagree on the truth
are left out and listed.

Where the line is drawn. A unit level is only worth reporting when the units are what the column promises
(patients with one diagnosis, studies with one EF) and there are enough of them. It is skipped, with the
reason recorded wherever the results would have gone (summary, subgroups, comparison, external sets, report,
model card), when
- fewer than evaluate.aggregate.min_units units keep a single truth (10 by default, as evaluate.min_subgroup:
  below it a patient-bootstrap CI is not worth printing), or
- more than evaluate.aggregate.max_left_out of the units (a fraction, 0.5 by default) are left out because
  their videos carry different labels: then the column does not name units with one truth each (an imaging
  project, a site, a patient whose clips are each rated), and the units that remain are a biased few.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cineflow.config import EvalConfig
from cineflow.tasks import Task


@dataclass(frozen=True)
class Units:
    """The unit-level predictions of a predictions table, or why there are none.

    Attributes:
        by: the column combined by.
        how: how the videos' scores were combined.
        table: one row per unit kept (a predictions table); empty where `skipped`.
        left_out: the units whose videos disagree on the truth.
        n_units: the units in the table, kept or not.
        skipped: why no unit-level result is given, or None.
    """

    by: str
    how: str
    table: pd.DataFrame
    left_out: list
    n_units: int
    skipped: str | None

    def record(self) -> dict:
        """What every result file says of the unit level besides its figures."""
        return {"by": self.by, "how": self.how, "left_out": self.left_out, "n_left_out": len(self.left_out),
                "n_units": self.n_units, "skipped": self.skipped}


def level_name(by: str) -> str:
    """The name of a unit level: patient for the group column, the column's name otherwise."""
    return "patient" if by == "group" else by


def skip_reason(by: str, n_units: int, n_left_out: int, aggregate: dict) -> str | None:
    """Why a unit level of `n_units` units, `n_left_out` of them left out, is not reported (module docstring),
    or None where it is."""
    level, kept = level_name(by), n_units - n_left_out
    min_units, max_left_out = aggregate["min_units"], aggregate["max_left_out"]
    if n_units and n_left_out / n_units > max_left_out:
        return (f"{n_left_out} of {n_units} {level}s have videos with different labels (more than "
                f"evaluate.aggregate.max_left_out = {max_left_out:g}): '{by}' does not name units with one truth "
                f"each; no {level}-level results. Set evaluate.aggregate.by to a patient or study column, or null")
    if kept < min_units:
        return (f"{kept} {level}(s) with one truth each, fewer than evaluate.aggregate.min_units = {min_units}: "
                f"too few for {level}-level results")
    return None


def units(task: Task, table: pd.DataFrame, aggregate: dict) -> Units | None:
    """The unit level of a predictions table (Units, maybe skipped), or None where evaluate.aggregate.by is
    null (`aggregate`: that section, defaults filled)."""
    by = aggregate.get("by")
    if not by:
        return None
    combined, left_out = task.aggregate(table, by, aggregate["how"])
    n_units = len(combined) + len(left_out)
    skipped = skip_reason(by, n_units, len(left_out), aggregate)
    return Units(by, aggregate["how"], combined.iloc[:0] if skipped else combined, left_out, n_units, skipped)


def unit_results(task: Task, table: pd.DataFrame, cfg: EvalConfig, seed: int) -> dict | None:
    """The pooled results (Task.pooled) of the unit-level predictions of `table`, with what they combine by,
    how, and the units left out; where the level is skipped, only that and the reason (`skipped`). None where
    evaluate.aggregate.by is null."""
    found = units(task, table, cfg.aggregate)
    if found is None:
        return None
    if found.skipped:
        return found.record()
    return {**found.record(), **task.pooled(found.table, cfg, seed)}
