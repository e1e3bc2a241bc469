"""The patient bootstrap, all resamples at once.

A resample of patients with replacement is a count per row: how many times its patient was drawn. Every
headline metric is a function of weighted sums over rows, so the metrics of B resamples are a few array
operations on a [B, rows] count matrix instead of B calls into scikit-learn, whose input checks took 95 % of
the time (the lung example's comparison spent 425 s there). The values equal the metrics of the resampled rows
(`tasks.metrics`) on the same draws, to floating-point rounding: the tests hold them side by side.

Large tables are resampled in chunks of resamples, so memory stays near `CELLS` counts whatever the size.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

CELLS = 4_000_000  # counts per chunk of resamples ([chunk, rows] float64: 32 MB)

Draws = Callable[[np.ndarray], dict[str, np.ndarray]]  # [B, rows] counts -> {metric: [B] values}


def bootstrap_weights(groups: np.ndarray, n: int, seed: int) -> np.ndarray:
    """[n, rows] counts: how many times each row is drawn in each of `n` resamples of its groups (patients)
    with replacement, so the clips and videos of one patient move together. One seed gives the same resamples
    whatever is computed from them: each resample is one `integers(0, G, G)` draw of the seeded generator."""
    unique, inverse = np.unique(np.asarray(groups), return_inverse=True)
    g = len(unique)
    rng = np.random.default_rng(seed)
    picks = np.stack([rng.integers(0, g, g) for _ in range(n)]) if n else np.zeros((0, g), int)
    counts = np.bincount((picks + g * np.arange(n)[:, None]).ravel(), minlength=n * g).reshape(n, g)
    return counts[:, inverse].astype(float)


def bootstrap_draws(groups: np.ndarray, draws_of: Draws, n: int, seed: int) -> dict[str, np.ndarray]:
    """Every metric `draws_of(counts)` returns, over `n` resamples of groups (`bootstrap_weights`), computed
    in chunks of resamples.

    Args:
        groups: the group (patient) of each row.
        draws_of: [B, rows] counts -> {name: [B] values}.
        n: bootstrap resamples.
        seed: seeds the resampling.
    """
    weights = bootstrap_weights(groups, n, seed)
    step = max(1, CELLS // max(1, weights.shape[1]))
    parts = [draws_of(weights[i:i + step]) for i in range(0, n, step)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def percentile_ci(values, level: float = 0.95) -> list[float]:
    """The percentile interval of the finite `values` ([nan, nan] when there are none)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    tail = 100 * (1 - level) / 2
    return ([float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))]
            if len(finite) else [float("nan"), float("nan")])


def group_bootstrap(groups: np.ndarray, draws_of: Draws, n: int, seed: int, level: float = 0.95
                    ) -> tuple[dict[str, list[float]], dict[str, int]]:
    """(percentile CIs of every metric `draws_of` returns, resampling groups (patients): see `bootstrap_draws`;
    how many draws of each were NaN and left out of its CI, where any were).

    A resample can miss a class (so ROC AUC is undefined): such draws are counted, not dropped silently,
    because many of them make the CI describe only the resamples that had both classes.
    """
    draws = bootstrap_draws(groups, draws_of, n, seed)
    undefined = {k: int((~np.isfinite(v)).sum()) for k, v in draws.items()}
    return {k: percentile_ci(v, level) for k, v in draws.items()}, {k: c for k, c in undefined.items() if c}


# --- metrics of weighted rows: w [B, N] counts, one row of w per resample --------------------------------------
def _divide(a: np.ndarray, b: np.ndarray, empty: float = 0.0) -> np.ndarray:
    """a / b, `empty` where b is 0 (tasks.metrics' ratio)."""
    out = np.full(np.broadcast(a, b).shape, empty, dtype=float)
    np.divide(a, b, out=out, where=b != 0)
    return out


def auc(y: np.ndarray, score: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC AUC of each resample: the Mann-Whitney statistic, each positive's weight times the weight of the
    negatives below it (ties count half), over (positives' x negatives' weight); NaN where a resample lacks a
    class. The negatives' cumulative weights are summed once per resample and looked up by score."""
    y, score = np.asarray(y).astype(bool), np.asarray(score, dtype=float)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    neg = neg[np.argsort(score[neg], kind="mergesort")]
    below = np.zeros((len(w), len(neg) + 1))
    np.cumsum(w[:, neg], axis=1, out=below[:, 1:])
    lo, hi = np.searchsorted(score[neg], score[pos], "left"), np.searchsorted(score[neg], score[pos], "right")
    wp = w[:, pos]
    wins = np.einsum("bi,bi->b", wp, below[:, lo] + below[:, hi]) / 2
    return _divide(wins, wp.sum(1) * below[:, -1], np.nan)


def average_precision(y: np.ndarray, score: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average precision of each resample (precision at each distinct score, weighted by the recall it adds);
    NaN where a resample has no positive."""
    y = np.asarray(y).astype(float)
    if not len(y):
        return np.full(len(w), np.nan)
    order = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
    s, hits, ws = np.asarray(score, dtype=float)[order], y[order], w[:, order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps, seen = np.cumsum(ws * hits, axis=1)[:, last], np.cumsum(ws, axis=1)[:, last]
    recall = _divide(tps, tps[:, -1:], np.nan)
    gained = np.diff(np.concatenate([np.zeros((len(w), 1)), recall], axis=1), axis=1)
    return np.sum(gained * _divide(tps, seen), axis=1)


def _undefined_where_empty(total: np.ndarray, metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """NaN in every metric of a resample without rows (a ratio's 0 for an empty denominator is for a class
    that no row has, not for no rows at all), as tasks.metrics gives for an empty table."""
    return {k: np.where(total > 0, v, np.nan) for k, v in metrics.items()}


def _confusion(y: np.ndarray, pred: np.ndarray, k: int, w: np.ndarray) -> np.ndarray:
    """[B, k, k] weighted confusion matrices (truth x prediction)."""
    cell = np.zeros((len(y), k * k))
    cell[np.arange(len(y)), np.asarray(y) * k + np.asarray(pred)] = 1.0
    return (w @ cell).reshape(len(w), k, k)


def binary(y: np.ndarray, score: np.ndarray, threshold, w: np.ndarray) -> dict[str, np.ndarray]:
    """tasks.metrics.binary_metrics' scalars of each resample."""
    y = np.asarray(y).astype(int)
    c = _confusion(y, (np.asarray(score, dtype=float) >= threshold).astype(int), 2, w)
    tn, fp, fn, tp = c[:, 0, 0], c[:, 0, 1], c[:, 1, 0], c[:, 1, 1]
    both = (tp + fn > 0) & (tn + fp > 0)
    recall, specificity = _divide(tp, tp + fn), _divide(tn, tn + fp, np.nan)
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return _undefined_where_empty(c.sum((1, 2)), {
            "accuracy": _divide(tp + tn, c.sum((1, 2))),
            "balanced_accuracy": np.where(both, (recall + specificity) / 2, np.nan),
            "precision": _divide(tp, tp + fp), "recall": recall, "specificity": specificity,
            "f1": _divide(2 * tp, 2 * tp + fp + fn),
            "roc_auc": np.where(both, auc(y, score, w), np.nan),
            "pr_auc": np.where(both, average_precision(y, score, w), np.nan),
            "mcc": _divide(tp * tn - fp * fn, denominator)})


def multiclass(y: np.ndarray, probs: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """tasks.metrics.multiclass_metrics' headline scalars of each resample (argmax predictions)."""
    y, k = np.asarray(y).astype(int), probs.shape[1]
    c = _confusion(y, probs.argmax(1), k, w)
    truth, predicted, right = c.sum(2), c.sum(1), np.diagonal(c, axis1=1, axis2=2)
    total = truth.sum(1)
    present = truth > 0
    f1 = _divide(2 * right, truth + predicted)
    cov_tp = right.sum(1) * total - (truth * predicted).sum(1)
    cov = (total ** 2 - (predicted ** 2).sum(1)) * (total ** 2 - (truth ** 2).sum(1))
    per_class = np.stack([auc(y == i, probs[:, i], w) for i in range(k)], axis=1)
    every = present.all(1)
    return _undefined_where_empty(total, {
            "accuracy": _divide(right.sum(1), total),
            "balanced_accuracy": _divide(_divide(right, truth).sum(1), present.sum(1), np.nan),
            "mcc": _divide(cov_tp, np.sqrt(cov)),
            "roc_auc": np.where(every, per_class.mean(1), np.nan),
            "roc_auc_weighted": np.where(every, _divide((per_class * truth).sum(1), total, np.nan), np.nan),
            "f1_macro": f1.mean(1), "f1_weighted": _divide((f1 * truth).sum(1), total)})


def regression(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """tasks.metrics.regression_metrics of each resample."""
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    n = w.sum(1)
    error = pred - y
    mean_y, mean_p = _divide(w @ y, n, np.nan), _divide(w @ pred, n, np.nan)
    ss_res, ss_tot = w @ error ** 2, (w * (y - mean_y[:, None]) ** 2).sum(1)
    ss_p = (w * (pred - mean_p[:, None]) ** 2).sum(1)
    covariance = (w * (y - mean_y[:, None]) * (pred - mean_p[:, None])).sum(1)
    tolerance = 1e-12 * np.maximum(1.0, n * mean_y ** 2)  # a constant column's sum of squares is rounding
    r2 = np.where(ss_tot > tolerance, 1 - _divide(ss_res, ss_tot), np.where(ss_res > 0, 0.0, 1.0))
    varied = (n > 1) & (ss_tot > tolerance) & (ss_p > 1e-12 * np.maximum(1.0, n * mean_p ** 2))
    return {"mae": _divide(w @ np.abs(error), n, np.nan), "rmse": np.sqrt(_divide(ss_res, n, np.nan)),
            "r2": np.where(n > 1, r2, np.nan),
            "pearson_r": np.where(varied, _divide(covariance, np.sqrt(ss_tot * ss_p), np.nan), np.nan),
            "bias": _divide(w @ error, n, np.nan)}


def net_benefit(y: np.ndarray, score: np.ndarray, thresholds: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """tasks.metrics.net_benefit of each resample, [B, thresholds], for the model and for treating everyone."""
    y, t = np.asarray(y).astype(float), np.asarray(thresholds, dtype=float)
    treated = (np.asarray(score, dtype=float)[:, None] >= t[None, :]).astype(float)
    n, odds = w.sum(1, keepdims=True), (t / (1 - t))[None, :]
    tp, fp = w @ (treated * y[:, None]), w @ (treated * (1 - y)[:, None])
    prevalence = (w @ y)[:, None] / n
    return {"model": tp / n - fp / n * odds, "treat_all": prevalence - (1 - prevalence) * odds}
