"""Tasks in a registry: binary, multiclass and regression differ in targets, metrics, decisions, predictions and
paired tests. Everything else asks the task (or its view, cineflow.presentation) instead of branching on it."""

from __future__ import annotations

from cineflow.tasks.base import TASKS, Task
from cineflow.tasks.classification import Binary, Multiclass
from cineflow.tasks.regression import Regression

__all__ = ["TASKS", "Task", "Binary", "Multiclass", "Regression", "task_for"]


def task_for(task: str, target: str | None, classes: list[str]) -> Task:
    """A `models:` entry's task: `task: regression` on `target`; `classification` is binary or multiclass
    by the class count."""
    name = task if task != "classification" else "binary" if len(classes) == 2 else "multiclass"
    return TASKS.get(name)(tuple(classes), target)
