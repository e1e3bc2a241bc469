"""Classification metrics and the val-tuned decision threshold."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

HIGHER_IS_BETTER = {"loss": False, "mae": False, "rmse": False}


def tune_threshold(y_true: np.ndarray, score: np.ndarray, rule: str) -> float:
    """Threshold on the positive score chosen on val data (Youden's J, best F1 or best MCC)."""
    y_true, score = np.asarray(y_true), np.asarray(score, dtype=float)
    if rule == "fixed" or len(np.unique(y_true)) < 2:
        return 0.5
    if rule == "youden":
        fpr, tpr, thresholds = skm.roc_curve(y_true, score)
        finite = np.isfinite(thresholds)
        return float(thresholds[finite][np.argmax((tpr - fpr)[finite])])
    scorer = {"f1": skm.f1_score, "mcc": skm.matthews_corrcoef}.get(rule)
    if scorer is None:
        raise ValueError(f"unknown threshold rule '{rule}'; use youden, f1, mcc or fixed")
    candidates = np.unique(score)
    values = [scorer(y_true, (score >= t).astype(int)) for t in candidates]
    return float(candidates[int(np.argmax(values))])


def binary_metrics(y_true: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    """Headline binary metrics; ranking metrics are NaN when only one class is present."""
    y_true = np.asarray(y_true).astype(int)
    score = np.asarray(score, dtype=float)
    pred = (score >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, pred, labels=[0, 1]).ravel()
    both = len(np.unique(y_true)) == 2
    return {
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, pred)) if both else float("nan"),
        "precision": float(skm.precision_score(y_true, pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, pred, zero_division=0)),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "f1": float(skm.f1_score(y_true, pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y_true, score)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y_true, score)) if both else float("nan"),
        "mcc": float(skm.matthews_corrcoef(y_true, pred)),
        "confusion_matrix": [[int(tn), int(fp)], [int(fn), int(tp)]],
    }


def is_better(metric: str, new: float, best: float | None) -> bool:
    if best is None or np.isnan(best):
        return not np.isnan(new)
    return new < best if not HIGHER_IS_BETTER.get(metric, True) else new > best
