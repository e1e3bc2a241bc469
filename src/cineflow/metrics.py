"""Metrics per task (binary, multiclass, regression) and the val-tuned decision threshold."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

# metrics where lower is better; every other monitor is maximised
LOWER_IS_BETTER = {"loss", "mae", "rmse", "mse"}


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
    return new < best if metric in LOWER_IS_BETTER else new > best


def multiclass_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict:
    """Argmax predictions: macro and weighted variants, one-vs-rest AUC, and per-class figures."""
    y_true = np.asarray(y_true).astype(int)
    labels = list(range(len(classes)))
    pred = probs.argmax(1)
    present = np.unique(y_true)
    all_present = len(present) == len(classes)
    out = {
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, pred)),
        "mcc": float(skm.matthews_corrcoef(y_true, pred)),
        "roc_auc": float(skm.roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=labels))
        if all_present else float("nan"),
        "roc_auc_weighted": float(skm.roc_auc_score(y_true, probs, multi_class="ovr", average="weighted",
                                                    labels=labels)) if all_present else float("nan"),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, pred, labels=labels, average=average,
                                                         zero_division=0)
        out.update({f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)})
    out["f1"] = out["f1_macro"]
    p, r, f, support = skm.precision_recall_fscore_support(y_true, pred, labels=labels, zero_division=0)
    out["per_class"] = {
        c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i]),
            "roc_auc": float(skm.roc_auc_score(y_true == i, probs[:, i])) if 0 < support[i] < len(y_true)
            else float("nan")}
        for i, c in enumerate(classes)}
    out["confusion_matrix"] = skm.confusion_matrix(y_true, pred, labels=labels).tolist()
    return out


def regression_metrics(y_true: np.ndarray, pred: np.ndarray) -> dict:
    y_true, pred = np.asarray(y_true, dtype=float), np.asarray(pred, dtype=float)
    varied = len(y_true) > 1 and np.std(y_true) > 0 and np.std(pred) > 0
    return {
        "mae": float(skm.mean_absolute_error(y_true, pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, pred))),
        "r2": float(skm.r2_score(y_true, pred)) if len(y_true) > 1 else float("nan"),
        "pearson_r": float(np.corrcoef(y_true, pred)[0, 1]) if varied else float("nan"),
        "bias": float(np.mean(pred - y_true)),
    }
