"""Metrics per task (binary, multiclass, regression) and the val-tuned decision threshold."""

from __future__ import annotations

import numpy as np
from scipy import stats
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


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic with midranks: sklearn's roc_auc_score to rounding, without its
    input checks, which take 95 % of its time, and the bootstraps (CIs, subgroups, paired comparisons) call
    this thousands of times. Both classes must be present."""
    y_true = np.asarray(y_true).astype(bool)
    ranks = stats.rankdata(score)
    m = int(y_true.sum())
    n = len(y_true) - m
    return float((ranks[y_true].sum() - m * (m + 1) / 2) / (m * n))


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """Average precision (sklearn's average_precision_score: precision at each distinct score, weighted by the
    recall it adds), without sklearn's input checks (see `roc_auc`). At least one positive."""
    y_true = np.asarray(y_true).astype(float)
    order = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
    ordered, hits = np.asarray(score, dtype=float)[order], y_true[order]
    last = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]  # the last row of each distinct score
    tps = np.cumsum(hits)[last]
    precision, recall = tps / (last + 1), tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def binary_metrics(y_true: np.ndarray, score: np.ndarray, threshold) -> dict:
    """Headline binary metrics; ranking metrics are NaN when only one class is present.

    The threshold metrics come from the confusion counts (the bootstrap calls this a thousand times);
    `threshold` may be one value or one per row (pooled folds, each with its own)."""
    y_true = np.asarray(y_true).astype(int)
    score = np.asarray(score, dtype=float)
    pred = (score >= threshold).astype(int)
    tn, fp, fn, tp = np.bincount(2 * y_true + pred, minlength=4).astype(float)
    both = len(np.unique(y_true)) == 2

    def ratio(a, b):  # 0 where the denominator is 0 (sklearn's zero_division), NaN where there are no rows
        return float(a / b) if b else (0.0 if len(y_true) else float("nan"))

    recall, specificity = ratio(tp, tp + fn), (float(tn / (tn + fp)) if tn + fp else float("nan"))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "accuracy": ratio(tp + tn, len(y_true)),
        "balanced_accuracy": (recall + specificity) / 2 if both else float("nan"),
        "precision": ratio(tp, tp + fp),
        "recall": recall,
        "specificity": specificity,
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "roc_auc": roc_auc(y_true, score) if both else float("nan"),
        "pr_auc": average_precision(y_true, score) if both else float("nan"),
        "mcc": ratio(tp * tn - fp * fn, denominator),
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
    if not len(y_true):
        return undefined_multiclass(classes)
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


def undefined_multiclass(classes: list[str]) -> dict:
    """multiclass_metrics of no rows: every figure NaN, the confusion matrix zeros."""
    nan = float("nan")
    scalars = ["accuracy", "balanced_accuracy", "mcc", "roc_auc", "roc_auc_weighted", "f1"] + [
        f"{m}_{a}" for a in ("macro", "weighted") for m in ("precision", "recall", "f1")]
    return {**dict.fromkeys(scalars, nan),
            "per_class": {c: {"precision": nan, "recall": nan, "f1": nan, "support": 0, "roc_auc": nan}
                          for c in classes},
            "confusion_matrix": np.zeros((len(classes), len(classes)), int).tolist()}


def regression_metrics(y_true: np.ndarray, pred: np.ndarray) -> dict:
    """MAE, RMSE, R², Pearson's r and the bias (NaN where the rows cannot define them: none, or one for R²)."""
    y_true, pred = np.asarray(y_true, dtype=float), np.asarray(pred, dtype=float)
    if not len(y_true):
        return dict.fromkeys(("mae", "rmse", "r2", "pearson_r", "bias"), float("nan"))
    varied = len(y_true) > 1 and np.std(y_true) > 0 and np.std(pred) > 0
    return {
        "mae": float(skm.mean_absolute_error(y_true, pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, pred))),
        "r2": float(skm.r2_score(y_true, pred)) if len(y_true) > 1 else float("nan"),
        "pearson_r": float(np.corrcoef(y_true, pred)[0, 1]) if varied else float("nan"),
        "bias": float(np.mean(pred - y_true)),
    }


def calibration(hit: np.ndarray, confidence: np.ndarray, n_bins: int = 10) -> dict:
    """Expected calibration error over equal-width confidence bins (with the reliability curve) and over
    equal-mass bins (each about N / n_bins rows, so sparse high-confidence bins do not hide or exaggerate the
    error).

    `hit` is the event the confidence claims (binary: the positive class; multiclass: the top-1
    prediction is right). Empty bins are left out of the curve."""
    hit, confidence = np.asarray(hit, dtype=float), np.asarray(confidence, dtype=float)
    if not len(hit):
        return {"ece": float("nan"), "ece_equal_mass": float("nan"), "reliability": []}
    which = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    curve, ece = [], 0.0
    for b in range(n_bins):
        inside = which == b
        if inside.any():
            gap = abs(hit[inside].mean() - confidence[inside].mean())
            ece += inside.mean() * gap
            curve.append({"bin": b, "confidence": float(confidence[inside].mean()),
                          "observed": float(hit[inside].mean()), "n": int(inside.sum())})
    order = np.argsort(confidence, kind="mergesort")
    mass = sum(len(part) * abs(hit[part].mean() - confidence[part].mean())
               for part in np.array_split(order, min(n_bins, len(order))) if len(part))
    return {"ece": float(ece), "ece_equal_mass": float(mass / len(hit)), "reliability": curve}


def brier(y: np.ndarray, probs: np.ndarray) -> float:
    """The Brier score: the mean squared distance between the class probabilities [N, K] and the one-hot truth
    (Brier 1950's multiclass form); binary, the usual mean of (p - y)^2 (half the two-class sum)."""
    if not len(y):
        return float("nan")
    onehot = np.eye(probs.shape[1])[np.asarray(y).astype(int)]
    value = float(np.mean(np.sum((np.asarray(probs, dtype=float) - onehot) ** 2, axis=1)))
    return value / 2 if probs.shape[1] == 2 else value


def bin_label(lo: float | None, hi: float | None) -> str:
    if lo is None:
        return f"<{hi:g}"
    return f">={lo:g}" if hi is None else f"{lo:g}-{hi:g}"


def binned_mae(y_true: np.ndarray, pred: np.ndarray, edges: list[float]) -> dict:
    """MAE within each target bin (EF: <30, 30-40, 40-55, 55-70, >=70); NaN for an empty bin."""
    y_true, pred = np.asarray(y_true, dtype=float), np.asarray(pred, dtype=float)
    bounds = [None, *edges, None]
    out = {}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        inside = np.ones(len(y_true), bool)
        if lo is not None:
            inside &= y_true >= lo
        if hi is not None:
            inside &= y_true < hi
        label = bin_label(lo, hi)
        out[label] = {"mae": float(np.abs(pred - y_true)[inside].mean()) if inside.any() else float("nan"),
                      "n": int(inside.sum())}
    return out


def bland_altman(y_true: np.ndarray, pred: np.ndarray) -> dict:
    """Bias (prediction - truth) and the 95 % limits of agreement (bias ± 1.96 sd)."""
    diff = np.asarray(pred, dtype=float) - np.asarray(y_true, dtype=float)
    sd = float(np.std(diff, ddof=1)) if len(diff) > 1 else float("nan")
    bias = float(diff.mean()) if len(diff) else float("nan")
    return {"bias": bias, "loa_lower": bias - 1.96 * sd, "loa_upper": bias + 1.96 * sd}


def cutoff_aucs(y_true: np.ndarray, pred: np.ndarray, cutoffs: list[float]) -> dict:
    """ROC AUC of the predicted value for "target below the cut-off" (EchoNet-Dynamic: EF < 35/40/45/50)."""
    y_true, pred = np.asarray(y_true, dtype=float), np.asarray(pred, dtype=float)
    out = {}
    for c in cutoffs:
        below = y_true < c
        both = 0 < below.sum() < len(below)
        out[f"auc_below_{c:g}"] = float(skm.roc_auc_score(below, -pred)) if both else float("nan")
    return out


def midranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    return stats.rankdata(x, method="average")


def delong(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> dict:
    """DeLong's test for the difference of two correlated ROC AUCs on the same cases (DeLong et al. 1988),
    computed with midranks (Sun & Xu 2014).

    Args:
        y: 1 for a positive case, 0 for a negative one.
        score_a: model A's positive-class score of each case.
        score_b: model B's, for the same cases in the same order.

    Returns:
        auc_a, auc_b, difference (a - b), its standard error, z, the two-sided p-value and the 95 % CI.
    """
    y = np.asarray(y).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong's test needs positive and negative cases")
    if m < 2 or n < 2:  # a class of one case: the AUCs exist, their covariance does not
        auc_a, auc_b = roc_auc(y, score_a), roc_auc(y, score_b)
        nan = float("nan")
        return {"auc_a": auc_a, "auc_b": auc_b, "difference": auc_a - auc_b, "se": nan, "z": nan, "p_value": nan,
                "ci95": [nan, nan], "note": "one case of a class: DeLong's variance needs two of each"}
    scores = np.vstack([score_a, score_b]).astype(float)  # [2, N]
    pos, neg = scores[:, y], scores[:, ~y]
    aucs, v10, v01 = [], [], []
    for k in range(2):
        both = midranks(np.concatenate([pos[k], neg[k]]))
        within_pos, within_neg = midranks(pos[k]), midranks(neg[k])
        aucs.append((both[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((both[:m] - within_pos) / n)  # each positive's share of negatives it outranks
        v01.append(1.0 - (both[m:] - within_neg) / m)  # each negative's share of positives above it
    s10, s01 = np.cov(np.asarray(v10)), np.cov(np.asarray(v01))
    cov = s10 / m + s01 / n
    diff = aucs[0] - aucs[1]
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = float(np.sqrt(max(var, 0.0)))
    z = diff / se if se > 0 else 0.0
    p = float(2 * stats.norm.sf(abs(z))) if se > 0 else 1.0
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": float(diff), "se": se, "z": float(z),
            "p_value": p, "ci95": [float(diff - 1.96 * se), float(diff + 1.96 * se)]}


def inverse_variance(differences: list[float], ses: list[float]) -> dict:
    """The fixed-effect (inverse-variance weighted) combination of independent estimates of one difference,
    e.g. per-fold DeLong differences: each fold's test videos are its own, so the folds are independent.
    Estimates without a positive standard error are left out (counted in `n_used`)."""
    d, se = np.asarray(differences, dtype=float), np.asarray(ses, dtype=float)
    used = np.isfinite(d) & np.isfinite(se) & (se > 0)
    if not used.any():
        return {"difference": float("nan"), "se": float("nan"), "z": float("nan"), "p_value": float("nan"),
                "ci95": [float("nan"), float("nan")], "n_used": 0}
    weight = 1 / se[used] ** 2
    diff, combined_se = float(np.sum(weight * d[used]) / weight.sum()), float(np.sqrt(1 / weight.sum()))
    z = diff / combined_se
    return {"difference": diff, "se": combined_se, "z": float(z), "p_value": float(2 * stats.norm.sf(abs(z))),
            "ci95": [diff - 1.96 * combined_se, diff + 1.96 * combined_se], "n_used": int(used.sum())}


def net_benefit(y: np.ndarray, score: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Net benefit of treating the rows whose score reaches each threshold probability pt (Vickers & Elkin
    2006): TP/N - FP/N · pt / (1 - pt), one value per threshold."""
    y, score = np.asarray(y).astype(bool), np.asarray(score, dtype=float)
    treated = score[:, None] >= np.asarray(thresholds)[None, :]
    tp, fp = (treated & y[:, None]).sum(0), (treated & ~y[:, None]).sum(0)
    odds = np.asarray(thresholds) / (1 - np.asarray(thresholds))
    return tp / len(y) - fp / len(y) * odds
