"""Recalibration of a fold's scores, fitted on that fold's val partition (evaluate.calibration).

Each fold's model ends on its own scale: three folds of the demo tuned thresholds of 0.93, 0.17 and 0.97, so
pooling their test scores (the pooled AUC, paired comparisons, subgroups, the ensemble of predict) mixed
differently scaled outputs. A map fitted on the fold's val videos and applied to its test videos, to external
sets and to new videos puts every fold on the probability scale its val data supports.

- temperature: softmax(log p / T), one T per fold (Guo et al. 2017): rescales confidence, keeps the ranking.
- platt: binary, sigmoid(a·logit + b) with Platt's smoothed targets (Platt 1999), which keep a val set the model
  separates perfectly from sending a to infinity; multiclass, vector scaling softmax(a_k·log p_k + b_k) with a
  small ridge towards the identity.
- isotonic: a monotone step map of each class's probability (one-vs-rest, rows renormalised); needs more val
  videos than the others, and ties scores that differed.
- regression (any method but none): the linear map a·prediction + b least-squares fitted on val.

A calibration is a small JSON object (the method and its numbers, isotonic's knots included), stored in the
fold's metrics.json beside its threshold: nothing is pickled, and predict applies it from there.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from sklearn.isotonic import IsotonicRegression

METHODS = ("none", "temperature", "platt", "isotonic")
EPS = 1e-7
RIDGE = 1e-2  # vector scaling's pull towards a = 1, b = 0, per val video


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, EPS, 1.0))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))


def _nll(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(_log(probs[np.arange(len(y)), y])))


def fit_classifier(method: str, y: np.ndarray, probs: np.ndarray) -> dict:
    """The calibration of class probabilities [N, K] fitted to the class indices `y` of the val videos; the
    identity ({"method": "none"}, with the reason) where val has one class only."""
    y, probs = np.asarray(y).astype(int), np.asarray(probs, dtype=float)
    if method == "none":
        return {"method": "none"}
    if len(np.unique(y)) < 2:
        return {"method": "none", "note": f"{method} not fitted: the val partition has one class only"}
    z, k = _log(probs), probs.shape[1]
    if method == "temperature":
        best = minimize_scalar(lambda t: _nll(_softmax(z / np.exp(t)), y), bounds=(np.log(0.02), np.log(50)),
                               method="bounded")
        return {"method": method, "temperature": float(np.exp(best.x))}
    if method == "platt" and k == 2:
        logit = z[:, 1] - z[:, 0]
        positives = int(y.sum())
        target = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (len(y) - positives + 2))

        def loss(ab):
            p = np.clip(_sigmoid(ab[0] * logit + ab[1]), EPS, 1 - EPS)
            return -np.mean(target * np.log(p) + (1 - target) * np.log(1 - p))

        a, b = minimize(loss, np.array([1.0, 0.0]), method="L-BFGS-B").x
        return {"method": method, "a": float(a), "b": float(b)}
    if method == "platt":
        def loss(ab):
            a, b = ab[:k], ab[k:]
            return _nll(_softmax(z * a + b), y) + RIDGE * (np.sum((a - 1) ** 2) + np.sum(b ** 2))

        ab = minimize(loss, np.r_[np.ones(k), np.zeros(k)], method="L-BFGS-B").x
        return {"method": method, "a": ab[:k].tolist(), "b": ab[k:].tolist()}
    if method == "isotonic":
        knots = []
        for c in range(k):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(probs[:, c], y == c)
            knots.append({"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()})
        return {"method": method, "knots": knots}
    raise ValueError(f"unknown calibration '{method}'; use one of {', '.join(METHODS)}")


def apply_classifier(calibration: dict | None, probs: np.ndarray) -> np.ndarray:
    """Class probabilities [N, K] through a fitted calibration (unchanged for none or None)."""
    probs = np.asarray(probs, dtype=float)
    method = (calibration or {}).get("method", "none")
    if method == "none" or len(probs) == 0:
        return probs
    z = _log(probs)
    if method == "temperature":
        return _softmax(z / calibration["temperature"])
    if method == "platt" and np.ndim(calibration["a"]) == 0:
        p = _sigmoid(calibration["a"] * (z[:, 1] - z[:, 0]) + calibration["b"])
        return np.stack([1 - p, p], axis=1)
    if method == "platt":
        return _softmax(z * np.asarray(calibration["a"]) + np.asarray(calibration["b"]))
    if method == "isotonic":
        mapped = np.stack([np.interp(probs[:, c], knot["x"], knot["y"])
                           for c, knot in enumerate(calibration["knots"])], axis=1)
        total = mapped.sum(1, keepdims=True)
        return np.where(total > 0, mapped / np.where(total > 0, total, 1), 1.0 / probs.shape[1])
    raise ValueError(f"unknown calibration '{method}'")


def fit_regression(method: str, y: np.ndarray, pred: np.ndarray) -> dict:
    """The linear recalibration a·prediction + b least-squares fitted on val (identity for none, or where the
    val predictions do not vary)."""
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float).ravel()
    if method == "none":
        return {"method": "none"}
    if len(y) < 2 or np.ptp(pred) == 0:
        return {"method": "none", "note": "linear recalibration not fitted: the val predictions do not vary"}
    a, b = np.polyfit(pred, y, 1)
    return {"method": "linear", "a": float(a), "b": float(b)}


def apply_regression(calibration: dict | None, pred: np.ndarray) -> np.ndarray:
    """Predictions [N, 1] through a fitted linear recalibration (unchanged for none or None)."""
    pred = np.asarray(pred, dtype=float)
    if (calibration or {}).get("method", "none") == "none":
        return pred
    return calibration["a"] * pred + calibration["b"]
