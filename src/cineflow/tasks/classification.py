"""Classification tasks: Binary (one positive class, a threshold tuned on val) and Multiclass (argmax)."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from cineflow.tasks import recalibration, resampled
from cineflow.tasks.base import TASKS, Task
from cineflow.tasks.metrics import (
    binary_metrics,
    brier,
    delong,
    inverse_variance,
    multiclass_metrics,
    net_benefit,
    tune_threshold,
)
from cineflow.tasks.resampled import bootstrap_draws


class Classification(Task):
    """What binary and multiclass share: class-index targets, class scores, calibration, correct/wrong."""

    loss_kind = "classification"
    default_loss = "cross_entropy"
    default_monitor = "roc_auc"

    @abstractmethod
    def decision(self, scores: np.ndarray, threshold) -> np.ndarray:
        """The predicted class index of each row."""

    @abstractmethod
    def score_column(self, pred: np.ndarray):
        """Which class's probability is a row's `score`."""

    @abstractmethod
    def calibration_inputs(self, y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hit, confidence) of each row for the reliability curve."""

    def undefined_note(self, table):
        return "one class only: ranking metrics undefined" if table["label"].nunique() < 2 else None

    def caveats(self, counts):
        if counts.min() < 0.2 * counts.max():
            return [f"Classes are imbalanced ({counts.idxmin()} {counts.min()} of {counts.sum()})."]
        return []

    def targets(self, rows):
        return rows["label"].map({c: i for i, c in enumerate(self.classes)}).to_numpy(dtype=np.int64)

    def batch_targets(self, y):
        return y

    def output_bias(self, y_train):
        return None

    def truth(self, table):
        return self.targets(table)

    def score_columns(self):
        return [f"score_{c}" for c in self.classes]

    def combine(self, scores):
        """Binary: the combined positive probability and its complement; multiclass: rows renormalised."""
        if scores.shape[1] == 2:
            return np.stack([1 - scores[:, 1], scores[:, 1]], axis=1)
        total = scores.sum(1, keepdims=True)
        return scores / np.where(total > 0, total, 1)

    def unit_truth(self, table, by):
        """Each unit's label; units whose videos carry different labels are left out."""
        labels = table.groupby(by, sort=True)["label"]
        agree = labels.nunique() == 1
        truth = labels.first()[agree].reset_index()
        return truth, sorted(map(str, agree.index[~agree]))

    def fit_calibration(self, method, y_val, val_scores):
        return recalibration.fit_classifier(method, y_val, val_scores)

    def calibrate(self, calibration, scores):
        return recalibration.apply_classifier(calibration, scores)

    def calibration_figures(self, y, scores, cfg):
        """Ranking (ROC AUC), calibration error (equal-width and equal-mass bins), Brier score, reliability."""
        figures = self.metrics(y, scores, self.decide(y, scores, "fixed"), cfg)
        return {k: figures[k] for k in ("roc_auc", "ece", "ece_equal_mass", "brier", "reliability")}

    def val_metrics(self, y, scores):
        loss = float(-np.mean(np.log(np.clip(scores[np.arange(len(y)), y], 1e-7, 1.0))))
        return {"loss": loss, **{k: v for k, v in self._metrics(y, scores, 0.5).items() if isinstance(v, float)}}

    def metrics(self, y, scores, threshold, cfg):
        """The task's metrics plus calibration and the Brier score."""
        out = self.calibrated(self._metrics(y, scores, threshold), *self.calibration_inputs(y, scores), cfg)
        return {**out, "brier": brier(y, scores)}

    def decide(self, y_val, val_scores, rule):
        return None

    def settings(self, threshold, cfg):
        return {"threshold": threshold}

    def outputs(self, scores, spread, threshold):
        """Class scores, the score, the prediction, its MC dropout uncertainty (the spread of that score)
        and the threshold used."""
        pred = self.decision(scores, threshold)
        index = (np.arange(len(scores)), self.score_column(pred))
        out = pd.DataFrame({**{f"score_{c}": scores[:, i] for i, c in enumerate(self.classes)},
                            "score": scores[index], "prediction": [self.classes[p] for p in pred],
                            "uncertainty": np.nan if spread is None else spread[index]})
        if threshold is not None:
            out["threshold"] = threshold
        return out

    def table(self, rows, y, scores, spread, threshold):
        out = self.outputs(scores, spread, threshold)
        out.insert(0, "video_id", rows["video_id"].to_numpy())
        out.insert(1, "group", rows["group"].to_numpy())
        out.insert(2, "label", rows["label"].to_numpy())
        out["correct"] = self.decision(scores, threshold) == y
        return out

    def uncertainty_metrics(self, table):
        """AUC of the uncertainty for a wrong prediction."""
        wrong = ~table["correct"].astype(bool).to_numpy()
        both = 0 < wrong.sum() < len(wrong)
        return {"mean_uncertainty": float(table["uncertainty"].mean()),
                "uncertainty_auc_wrong": float(roc_auc_score(wrong, table["uncertainty"]))
                if both else float("nan")}

@TASKS.register
class Binary(Classification):
    name = "binary"
    monitors = frozenset({"loss", "accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1",
                          "roc_auc", "pr_auc", "mcc"})
    headline = ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "f1", "mcc", "precision", "recall",
                "specificity")

    @property
    def positive(self) -> str:
        return self.classes[1]

    def _metrics(self, y, scores, threshold):
        return binary_metrics(y, scores[:, 1], threshold)

    def _draws(self, y, scores, threshold, weights):
        return resampled.binary(y, scores[:, 1], threshold, weights)

    def decide(self, y_val, val_scores, rule):
        return tune_threshold(y_val, val_scores[:, 1], rule)

    def settings(self, threshold, cfg):
        return {"positive_class": self.positive, "threshold": float(threshold), "threshold_rule": cfg.threshold}

    def describe(self, settings):
        return (f"{super().describe(settings)} (positive class {settings['positive_class']}, threshold tuned on "
                f"val by {settings['threshold_rule']})")

    def paired_tests(self, a, b, whole, ci):
        """DeLong's test of the two ROC AUCs on the pooled videos (where both classes occur) and, where the
        tables carry their folds, DeLong within each fold combined over the folds by inverse variance: each
        fold's scores are on that fold's own scale, so a pooled difference can come from the pooling."""
        y = self.truth(a)
        if len(set(y)) != 2:
            return []
        test = delong(y, self.scores_of(a)[:, 1], self.scores_of(b)[:, 1])
        out = [{"metric": "roc_auc", "values": [test["auc_a"], test["auc_b"]], "difference": test["difference"],
                "ci95": test["ci95"], "p_value": test["p_value"], "test": "delong", "z": test["z"]}]
        if "fold" in a:
            folds = []
            for fold in sorted(a["fold"].unique()):
                inside = (a["fold"] == fold).to_numpy()
                if len(set(y[inside])) == 2:
                    t = delong(y[inside], self.scores_of(a)[inside, 1], self.scores_of(b)[inside, 1])
                    folds.append({"fold": int(fold), "n": int(inside.sum()), "difference": t["difference"],
                                  "se": t["se"], "p_value": t["p_value"]})
            combined = inverse_variance([f["difference"] for f in folds], [f["se"] for f in folds])
            out.append({"metric": "roc_auc", "values": [test["auc_a"], test["auc_b"]],
                        "difference": combined["difference"], "ci95": combined["ci95"],
                        "p_value": combined["p_value"], "test": "delong_per_fold", "z": combined["z"],
                        "per_fold": folds, "folds_used": combined["n_used"]})
        return out

    def decision_curve(self, table, cfg, seed):
        """Decision analysis of the positive class's (recalibrated) probability: the net benefit of treating the
        videos at or above each threshold probability 1 %..99 %, of treating all and of treating none (0),
        with 95 % patient-bootstrap bands, and the thresholds where the model beats both."""
        y, score = self.truth(table), self.scores_of(table)[:, 1]
        if len(set(y)) != 2:
            return None
        thresholds = np.round(np.arange(1, 100) / 100, 2)
        model, everyone = net_benefit(y, score, thresholds), net_benefit(y, np.ones(len(y)), thresholds)
        out = {"thresholds": thresholds.tolist(), "model": model.tolist(), "treat_all": everyone.tolist(),
               "treat_none": 0.0, "bootstrap": cfg.bootstrap,
               "beats_both": thresholds[model > np.maximum(everyone, 0) + 1e-12].tolist()}
        if cfg.bootstrap:
            draws = bootstrap_draws(table["group"].to_numpy(),
                                    lambda w: resampled.net_benefit(y, score, thresholds, w), cfg.bootstrap, seed)
            for name, values in draws.items():
                out[f"{name}_ci"] = np.percentile(values, [2.5, 97.5], axis=0).tolist()
        return out

    def calibration_inputs(self, y, scores):
        return y == 1, scores[:, 1]

    def decision(self, scores, threshold):
        return (scores[:, 1] >= threshold).astype(int)

    def score_column(self, pred):
        return 1  # the positive class's probability

@TASKS.register
class Multiclass(Classification):
    name = "multiclass"
    monitors = frozenset({"loss", "accuracy", "balanced_accuracy", "mcc", "roc_auc", "roc_auc_weighted", "f1",
                          "f1_macro", "f1_weighted", "precision_macro", "recall_macro"})
    headline = ("roc_auc", "accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "mcc")

    def _metrics(self, y, scores, threshold=None):
        return multiclass_metrics(y, scores, list(self.classes))

    def _draws(self, y, scores, threshold, weights):
        return resampled.multiclass(y, scores, weights)

    def calibration_inputs(self, y, scores):
        return scores.argmax(1) == y, scores.max(1)

    def decision(self, scores, threshold):
        return scores.argmax(1)

    def score_column(self, pred):
        return pred  # the predicted class's probability
