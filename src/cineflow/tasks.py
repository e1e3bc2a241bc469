"""Tasks in a registry: binary, multiclass and regression differ in targets, metrics and predictions.

The trainer, evaluation and Grad-CAM ask the task instead of branching on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import ConfigError
from .metrics import binary_metrics, multiclass_metrics, regression_metrics, tune_threshold
from .registry import registrar

TASKS: dict[str, type["Task"]] = {}
register_task = registrar(TASKS)


@dataclass(frozen=True)
class Task:
    classes: tuple[str, ...]
    target: str | None = None

    name = ""
    kind = "classification"  # which losses fit (losses.LossEntry.task)
    default_loss = "cross_entropy"
    default_monitor = "roc_auc"
    monitors = frozenset()
    headline = ()  # the metrics the report's tables show (the first ranks the models)

    def as_dict(self) -> dict:
        return {"name": self.name, "classes": list(self.classes), "target": self.target}

    @staticmethod
    def from_dict(d: dict) -> "Task":
        return TASKS[d["name"]](tuple(d["classes"]), d.get("target"))

    def targets(self, rows: pd.DataFrame) -> np.ndarray:
        return rows["label"].map({c: i for i, c in enumerate(self.classes)}).to_numpy(dtype=np.int64)

    def val_metrics(self, y: np.ndarray, scores: np.ndarray) -> dict:
        """Scalar metrics on the val partition for early stopping; `loss` is the video-level NLL."""
        loss = float(-np.mean(np.log(np.clip(scores[np.arange(len(y)), y], 1e-7, 1.0))))
        scores = self._metrics(y, scores, 0.5)
        return {"loss": loss, **{k: v for k, v in scores.items() if isinstance(v, float)}}

    def cam_output(self, prediction, output: str) -> int:
        """Which output Grad-CAM explains: the predicted class (one sigmoid output: that output)."""
        return self.classes.index(prediction) if output == "softmax" else 0

    def caption(self, pick) -> str:
        return f"true {pick.label} | pred {pick.prediction} | p={pick.score:.2f}"

    def cam_candidates(self, predictions: pd.DataFrame, threshold: float | None) -> list[pd.DataFrame]:
        """Test videos worth explaining, each list ranked best first and tagged with its `kind`:
        most confident correct, most confident wrong."""
        ranked = predictions.assign(confidence=self.confidence(predictions, threshold)).sort_values(
            ["confidence", "video_id"], ascending=[False, True])
        return [ranked[ranked["correct"]].assign(kind="confident_correct"),
                ranked[~ranked["correct"]].assign(kind="confident_wrong")]


@register_task("binary")
@dataclass(frozen=True)
class Binary(Task):
    name = "binary"
    monitors = frozenset({"loss", "accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1",
                          "roc_auc", "pr_auc", "mcc"})
    headline = ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "f1", "mcc", "precision", "recall",
                "specificity")

    def _metrics(self, y, scores, threshold):
        return binary_metrics(y, scores[:, 1], threshold)

    def evaluate(self, y_val, val_scores, y_test, test_scores, test_rows, threshold_rule):
        threshold = tune_threshold(y_val, val_scores[:, 1], threshold_rule)
        pred = (test_scores[:, 1] >= threshold).astype(int)
        table = _class_table(self.classes, test_rows, test_scores, pred, y_test, score=test_scores[:, 1])
        return {"positive_class": self.classes[1], "threshold": float(threshold), "threshold_rule": threshold_rule,
                "metrics": self._metrics(y_test, test_scores, threshold),
                "val_metrics": self._metrics(y_val, val_scores, threshold)}, table

    def confidence(self, predictions: pd.DataFrame, threshold: float) -> pd.Series:
        return (predictions["score"] - threshold).abs()


@register_task("multiclass")
@dataclass(frozen=True)
class Multiclass(Task):
    name = "multiclass"
    monitors = frozenset({"loss", "accuracy", "balanced_accuracy", "mcc", "roc_auc", "roc_auc_weighted", "f1",
                          "f1_macro", "f1_weighted", "precision_macro", "recall_macro"})
    headline = ("roc_auc", "accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "mcc")

    def _metrics(self, y, scores, threshold=None):
        return multiclass_metrics(y, scores, list(self.classes))

    def evaluate(self, y_val, val_scores, y_test, test_scores, test_rows, threshold_rule):
        pred = test_scores.argmax(1)
        table = _class_table(self.classes, test_rows, test_scores, pred, y_test, score=test_scores.max(1))
        return {"threshold": None, "metrics": self._metrics(y_test, test_scores),
                "val_metrics": self._metrics(y_val, val_scores)}, table

    def confidence(self, predictions: pd.DataFrame, threshold) -> pd.Series:
        return predictions["score"]


@register_task("regression")
@dataclass(frozen=True)
class Regression(Task):
    name = "regression"
    kind = "regression"
    default_loss = "mse"
    default_monitor = "mae"
    monitors = frozenset({"loss", "mae", "rmse", "r2", "pearson_r"})
    headline = ("mae", "rmse", "r2", "pearson_r", "bias")

    def targets(self, rows: pd.DataFrame) -> np.ndarray:
        return rows[self.target].to_numpy(dtype=np.float32)

    def val_metrics(self, y, scores):
        scores = regression_metrics(y, scores[:, 0])
        return {"loss": scores["rmse"] ** 2, **scores}

    def evaluate(self, y_val, val_scores, y_test, test_scores, test_rows, threshold_rule):
        pred = test_scores[:, 0]
        table = pd.DataFrame({"video_id": test_rows["video_id"], "group": test_rows["group"],
                              "label": test_rows["label"], "target": y_test, "prediction": pred,
                              "error": pred - y_test, "score": pred})
        return {"target": self.target, "threshold": None, "metrics": regression_metrics(y_test, pred),
                "val_metrics": regression_metrics(y_val, val_scores[:, 0])}, table

    def cam_candidates(self, predictions: pd.DataFrame, threshold) -> list[pd.DataFrame]:
        """Closest and farthest predictions (each video in one list only)."""
        ranked = predictions.assign(confidence=-predictions["error"].abs()).sort_values(
            ["confidence", "video_id"], ascending=[False, True])
        half = (len(ranked) + 1) // 2
        return [ranked.iloc[:half].assign(kind="closest"), ranked.iloc[half:][::-1].assign(kind="farthest")]

    def cam_output(self, prediction, output: str) -> int:
        return 0

    def caption(self, pick) -> str:
        return f"{self.target} true {pick.target:.1f} | pred {pick.prediction:.1f}"


def _class_table(classes, rows, scores, pred, y, score) -> pd.DataFrame:
    return pd.DataFrame({
        "video_id": rows["video_id"], "group": rows["group"], "label": rows["label"],
        **{f"score_{c}": scores[:, i] for i, c in enumerate(classes)},
        "score": score, "prediction": [classes[p] for p in pred], "correct": pred == y,
    })


def task_for(task: str, target: str | None, classes: list[str]) -> Task:
    """A `models:` entry's task: regression on `target`, else binary or multiclass by the class count."""
    if task == "regression":
        return Regression(tuple(classes), target)
    return (Binary if len(classes) == 2 else Multiclass)(tuple(classes))


def check_model(name: str, model: dict, classes: list[str], targets: list[str]) -> None:
    """Parse-time checks of one `models:` entry that the schema cannot express; errors name the key."""
    from .losses import loss_entry

    where = f"models/{name}"
    if model["task"] == "regression":
        if not model.get("target"):
            raise ConfigError(f"{where}/target: a regression model needs a target column (one of data.targets "
                              f"{targets})")
        if model["target"] not in targets:
            raise ConfigError(f"{where}/target: '{model['target']}' is not in data.targets {targets}; add it there "
                              "so every row is checked for a numeric value")
    task = task_for(model["task"], model.get("target"), classes)
    loss = model["loss"] or task.default_loss
    if loss_entry(loss).task != task.kind:
        raise ConfigError(f"{where}/loss: '{loss}' is a {loss_entry(loss).task} loss but the task is {task.name}")
    monitor = model["monitor"] or task.default_monitor
    if monitor not in task.monitors:
        raise ConfigError(f"{where}/monitor: '{monitor}' is not a {task.name} metric; choose one of "
                          f"{sorted(task.monitors)}")
    if model["sampler"] != "shuffle" and task.kind == "regression":
        raise ConfigError(f"{where}/sampler: '{model['sampler']}' balances classes; a regression model uses "
                          "shuffle")
