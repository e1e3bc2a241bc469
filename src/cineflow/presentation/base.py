"""The TaskView protocol: what the report, its figures and Grad-CAM ask of a task."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from cineflow.registry import Registry
from cineflow.tasks import Task

VIEWS: Registry[type["TaskView"]] = Registry("task view", "models.<name>.task")


def view_of(task: Task) -> "TaskView":
    """The presentation of `task` (the view registered under its name)."""
    return VIEWS.get(task.name)(task)


@dataclass(frozen=True)
class TaskView(ABC):
    """One task's presentation. Class attributes: `figures` (report.plots.FIGURES names, in report order), the
    Grad-CAM selections `cam_kinds` (gradcam.select's default), the header of the mistakes table's score cells."""

    task: Task

    name: ClassVar[str] = ""
    figures: ClassVar[tuple[str, ...]] = ()
    cam_kinds: ClassVar[tuple[str, ...]] = ()
    mistake_score_header: ClassVar[str] = "score"

    # --- the report -------------------------------------------------------------------------------
    @abstractmethod
    def uncertainty_points(self, oof: pd.DataFrame) -> tuple[str, list[tuple]]:
        """(y-axis label, [(legend name or None, rows, y values, colour)]): what the uncertainty figure
        plots against MC dropout's spread."""

    @abstractmethod
    def mistakes(self, oof: pd.DataFrame) -> pd.DataFrame:
        """Wrong out-of-fold predictions, the worst first."""

    @abstractmethod
    def mistakes_heading(self, oof: pd.DataFrame) -> str:
        """The heading of the report's mistakes table."""

    @abstractmethod
    def mistake_cells(self, row) -> dict:
        """The truth, prediction and score cells of one row of the report's mistakes table."""

    def fold_cells(self, metrics: dict) -> dict:
        """The task's cells of one row of the report's per-fold table (beside the headline metrics)."""
        return {}

    # --- Grad-CAM and prediction ------------------------------------------------------------------
    @abstractmethod
    def cam_candidates(self, predictions: pd.DataFrame, threshold, kinds) -> list[pd.DataFrame]:
        """Test videos worth explaining, one ranked list per gradcam.select kind (best first), each tagged
        with its `kind`; kinds that do not apply to the task are skipped."""

    @abstractmethod
    def cam_output(self, prediction, output: str) -> int:
        """Which model output Grad-CAM explains for a video predicted `prediction`."""

    @abstractmethod
    def caption(self, pick) -> str:
        """The caption of a test video's Grad-CAM (truth and prediction)."""

    @abstractmethod
    def cam_note(self, row: dict) -> str:
        """The report's line under a Grad-CAM, from a row of the fold's gradcam/index.csv."""

    @abstractmethod
    def prediction_caption(self, pred) -> str:
        """The caption of a new video's Grad-CAM (prediction only: there is no truth)."""

    def most_uncertain(self, ranked: pd.DataFrame) -> pd.DataFrame:
        """Largest MC dropout spread; without MC dropout, the least confident predictions."""
        if ranked["uncertainty"].notna().all():
            return ranked.sort_values(["uncertainty", "video_id"], ascending=[False, True])
        return ranked[::-1]
