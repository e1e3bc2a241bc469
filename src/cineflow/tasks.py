"""Tasks in a registry: binary, multiclass and regression differ in targets, metrics and predictions.

The trainer, evaluation, the pooled summary and Grad-CAM ask the task instead of branching on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import ConfigError
from .metrics import (binary_metrics, bland_altman, binned_mae, calibration, cutoff_aucs, group_bootstrap,
                      multiclass_metrics, regression_metrics, sklearn_metrics, tune_threshold)
from .registry import registrar

TASKS: dict[str, type["Task"]] = {}
register_task = registrar(TASKS)


def scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


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
    cam_kinds = ("correct_per_class", "confident_wrong", "uncertain")  # gradcam.select default

    def as_dict(self) -> dict:
        return {"name": self.name, "classes": list(self.classes), "target": self.target}

    @staticmethod
    def from_dict(d: dict) -> "Task":
        return TASKS[d["name"]](tuple(d["classes"]), d.get("target"))

    @staticmethod
    def of_metrics(metrics: dict) -> "Task":
        """The task a fold's metrics.json was computed for."""
        return Task.from_dict({"name": metrics["task"], "classes": metrics["classes"], "target": metrics.get("target")})

    def targets(self, rows: pd.DataFrame) -> np.ndarray:
        return rows["label"].map({c: i for i, c in enumerate(self.classes)}).to_numpy(dtype=np.int64)

    def truth(self, table: pd.DataFrame) -> np.ndarray:
        """Targets of a predictions table (its `label`, or `target` for regression)."""
        return self.targets(table)

    def scores_of(self, table: pd.DataFrame) -> np.ndarray:
        """The [N, K] scores a predictions table was made from."""
        return table[[f"score_{c}" for c in self.classes]].to_numpy(dtype=float)

    def val_metrics(self, y: np.ndarray, scores: np.ndarray) -> dict:
        """Scalar metrics on the val partition for early stopping; `loss` is the video-level NLL."""
        loss = float(-np.mean(np.log(np.clip(scores[np.arange(len(y)), y], 1e-7, 1.0))))
        return {"loss": loss, **scalars(self._metrics(y, scores, 0.5))}

    def evaluate(self, y_val, val, y_test, test, test_rows: pd.DataFrame, cfg) -> tuple[dict, pd.DataFrame]:
        """(metrics.json content, predictions table) of one fold; `val`/`test` are inference.VideoScores.

        Binary: the threshold is tuned on val and applied unchanged to test. Video scores are the mean
        over clips; `clip_metrics` scores every clip on its own."""
        threshold = self.decide(y_val, val.mean, cfg.threshold)
        table = self.table(test_rows, y_test, test.mean, test.spread, threshold)
        metrics = self.metrics(y_test, test.mean, threshold, cfg)
        if test.spread is not None:
            metrics.update(self.uncertainty_metrics(table))
        return {**self.settings(threshold, cfg), "metrics": metrics,
                "clip_metrics": scalars(self.metrics(y_test[test.owner], test.clips, threshold, cfg)),
                "n_test_clips": int(len(test.owner)),
                "val_metrics": scalars(self.metrics(y_val, val.mean, threshold, cfg))}, table

    def pooled(self, oof: pd.DataFrame, cfg, seed: int) -> dict:
        """Metrics of all folds' test predictions together (each fold's own threshold) and group-bootstrap
        95 % CIs of the headline metrics."""
        y, scores = self.truth(oof), self.scores_of(oof)
        threshold = oof["threshold"].to_numpy(dtype=float) if "threshold" in oof else None
        metrics = self.metrics(y, scores, threshold, cfg)
        if "uncertainty" in oof and oof["uncertainty"].notna().all():
            metrics.update(self.uncertainty_metrics(oof))

        def headline(rows):  # the task's core metrics only: calibration and bins are not headline figures
            part = self._metrics(y[rows], scores[rows], None if threshold is None else threshold[rows])
            return {k: part[k] for k in self.headline}

        ci = group_bootstrap(oof["group"].to_numpy(), headline, cfg.bootstrap, seed) if cfg.bootstrap else {}
        return {"n": int(len(oof)), "n_groups": int(oof["group"].nunique()), "metrics": metrics, "ci": ci,
                "bootstrap": cfg.bootstrap}

    def decide(self, y_val, val_scores, rule: str):
        return None

    def outputs(self, scores: np.ndarray, spread: np.ndarray | None, threshold) -> pd.DataFrame:
        """What is predicted for each row, without the truth: class scores, the score, the prediction and
        its MC dropout uncertainty (the spread of that score), and the threshold used."""
        pred = self.decision(scores, threshold)
        index = (np.arange(len(scores)), self.score_column(pred))
        out = pd.DataFrame({**{f"score_{c}": scores[:, i] for i, c in enumerate(self.classes)},
                            "score": scores[index], "prediction": [self.classes[p] for p in pred],
                            "uncertainty": np.nan if spread is None else spread[index]})
        if threshold is not None:
            out["threshold"] = threshold
        return out

    def table(self, rows: pd.DataFrame, y, scores, spread, threshold) -> pd.DataFrame:
        """The predictions table of test videos: outputs beside the truth."""
        out = self.outputs(scores, spread, threshold)
        out.insert(0, "video_id", rows["video_id"].to_numpy())
        out.insert(1, "group", rows["group"].to_numpy())
        out.insert(2, "label", rows["label"].to_numpy())
        out["correct"] = self.decision(scores, threshold) == y
        return out

    def settings(self, threshold, cfg) -> dict:
        return {"threshold": threshold}

    def metrics(self, y, scores, threshold, cfg) -> dict:
        """The full metric set: the task's metrics plus calibration (classification)."""
        out = self._metrics(y, scores, threshold)
        hit, confidence = self.calibration_inputs(y, scores)
        cal = calibration(hit, confidence, cfg.calibration_bins)
        return {**out, "ece": cal["ece"], "reliability": cal["reliability"]}

    def uncertainty_metrics(self, table: pd.DataFrame) -> dict:
        """How well MC dropout's spread flags errors: AUC of the uncertainty for a wrong prediction."""
        wrong = ~table["correct"].astype(bool).to_numpy()
        both = 0 < wrong.sum() < len(wrong)
        return {"mean_uncertainty": float(table["uncertainty"].mean()),
                "uncertainty_auc_wrong": float(sklearn_metrics().roc_auc_score(wrong, table["uncertainty"]))
                if both else float("nan")}

    def mistakes(self, oof: pd.DataFrame) -> pd.DataFrame:
        """Wrong out-of-fold predictions, the most confident first (regression: the largest errors)."""
        threshold = oof["threshold"] if "threshold" in oof else None
        wrong = oof[~oof["correct"].astype(bool)]
        return wrong.assign(confidence=self.confidence(wrong, threshold if threshold is None else
                                                       threshold[wrong.index])).sort_values(
            ["confidence", "video_id"], ascending=[False, True])

    def cam_output(self, prediction, output: str) -> int:
        """Which output Grad-CAM explains: the predicted class (one sigmoid output: that output)."""
        return self.classes.index(prediction) if output == "softmax" else 0

    def caption(self, pick) -> str:
        return f"true {pick.label} | pred {pick.prediction} | p={pick.score:.2f}"

    def cam_candidates(self, predictions: pd.DataFrame, threshold, kinds) -> list[pd.DataFrame]:
        """Test videos worth explaining, one ranked list per kind of gradcam.select (best first), each
        tagged with its `kind`; kinds that do not apply to the task are skipped."""
        ranked = predictions.assign(confidence=self.confidence(predictions, threshold)).sort_values(
            ["confidence", "video_id"], ascending=[False, True])
        lists = []
        for kind in kinds or self.cam_kinds:
            if kind == "correct_per_class":
                right = ranked[ranked["correct"]]
                lists.append(right.groupby("label", sort=True).head(1).assign(kind=kind))
            elif kind == "confident_correct":
                lists.append(ranked[ranked["correct"]].assign(kind=kind))
            elif kind == "confident_wrong":
                lists.append(ranked[~ranked["correct"]].assign(kind=kind))
            elif kind == "uncertain":
                lists.append(self.most_uncertain(ranked).assign(kind=kind))
        return lists

    def most_uncertain(self, ranked: pd.DataFrame) -> pd.DataFrame:
        """Largest MC dropout spread; without MC dropout, the least confident predictions."""
        if ranked["uncertainty"].notna().all():
            return ranked.sort_values(["uncertainty", "video_id"], ascending=[False, True])
        return ranked[::-1]


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

    def decide(self, y_val, val_scores, rule):
        return tune_threshold(y_val, val_scores[:, 1], rule)

    def settings(self, threshold, cfg):
        return {"positive_class": self.classes[1], "threshold": float(threshold), "threshold_rule": cfg.threshold}

    def calibration_inputs(self, y, scores):
        return y == 1, scores[:, 1]

    def decision(self, scores, threshold):
        return (scores[:, 1] >= threshold).astype(int)

    def score_column(self, pred):
        return 1  # the positive class's probability

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

    def calibration_inputs(self, y, scores):
        return scores.argmax(1) == y, scores.max(1)

    def decision(self, scores, threshold):
        return scores.argmax(1)

    def score_column(self, pred):
        return pred  # the predicted class's probability

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
    cam_kinds = ("closest", "farthest", "uncertain")

    def targets(self, rows: pd.DataFrame) -> np.ndarray:
        return rows[self.target].to_numpy(dtype=np.float32)

    def truth(self, table: pd.DataFrame) -> np.ndarray:
        return table["target"].to_numpy(dtype=float)

    def scores_of(self, table: pd.DataFrame) -> np.ndarray:
        return table[["prediction"]].to_numpy(dtype=float)

    def _metrics(self, y, scores, threshold=None):
        return regression_metrics(y, scores[:, 0])

    def val_metrics(self, y, scores):
        scores = self._metrics(y, scores)
        return {"loss": scores["rmse"] ** 2, **scores}

    def settings(self, threshold, cfg):
        return {"target": self.target, "threshold": None}

    def metrics(self, y, scores, threshold, cfg) -> dict:
        """MAE, RMSE, R², r, Bland-Altman limits, MAE per target bin and AUCs at target cut-offs."""
        pred = scores[:, 0]
        bins = binned_mae(y, pred, cfg.regression_bins)
        return {**self._metrics(y, scores), **{k: v for k, v in bland_altman(y, pred).items() if k != "bias"},
                **{f"mae_bin_{label}": b["mae"] for label, b in bins.items()}, **cutoff_aucs(y, pred, cfg.cutoffs),
                "bins": bins}

    def uncertainty_metrics(self, table: pd.DataFrame) -> dict:
        """Spearman correlation of MC dropout's spread with the absolute error."""
        error, spread = table["error"].abs(), table["uncertainty"]
        varied = error.nunique() > 1 and spread.nunique() > 1
        return {"mean_uncertainty": float(spread.mean()),
                "uncertainty_spearman": float(error.corr(spread, method="spearman")) if varied else float("nan")}

    def outputs(self, scores, spread, threshold):
        return pd.DataFrame({"prediction": scores[:, 0], "score": scores[:, 0],
                             "uncertainty": np.nan if spread is None else spread[:, 0]})

    def table(self, rows, y, scores, spread, threshold):
        out = self.outputs(scores, spread, threshold)
        return pd.DataFrame({"video_id": rows["video_id"].to_numpy(), "group": rows["group"].to_numpy(),
                             "label": rows["label"].to_numpy(), "target": y, **out,
                             "error": out["prediction"].to_numpy() - y})

    def cam_candidates(self, predictions: pd.DataFrame, threshold, kinds) -> list[pd.DataFrame]:
        """Closest and farthest predictions (each video in one of the two lists only); the most uncertain
        when MC dropout gave a spread (a regression value alone says nothing about its certainty)."""
        ranked = predictions.assign(confidence=-predictions["error"].abs()).sort_values(
            ["confidence", "video_id"], ascending=[False, True])
        half = (len(ranked) + 1) // 2
        lists = {"closest": ranked.iloc[:half], "farthest": ranked.iloc[half:][::-1]}
        if ranked["uncertainty"].notna().all():
            lists["uncertain"] = self.most_uncertain(ranked)
        return [lists[k].assign(kind=k) for k in kinds or self.cam_kinds if k in lists]

    def cam_output(self, prediction, output: str) -> int:
        return 0

    def mistakes(self, oof: pd.DataFrame) -> pd.DataFrame:
        return oof.assign(confidence=oof["error"].abs()).sort_values(["confidence", "video_id"],
                                                                     ascending=[False, True])

    def caption(self, pick) -> str:
        return f"{self.target} true {pick.target:.1f} | pred {pick.prediction:.1f}"


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
