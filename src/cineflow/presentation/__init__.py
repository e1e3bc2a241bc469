"""How a task's results are shown: the report's figures, tables and notes, the Grad-CAM's picks and captions.

A `TaskView` per task kind, in the VIEWS registry under the task's name; `view_of(task)` gives it. The task
itself (cineflow.tasks) holds only what statistics ask: targets, metrics, decisions, tests.
"""

from __future__ import annotations

from cineflow.presentation.base import VIEWS, TaskView, view_of
from cineflow.presentation.classification import BinaryView, MulticlassView
from cineflow.presentation.regression import RegressionView

__all__ = ["VIEWS", "TaskView", "view_of", "BinaryView", "MulticlassView", "RegressionView"]
