"""Recalibration fitted on val (tasks.recalibration) with known answers, and a fold evaluated through it."""

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from cineflow.config import EvalConfig
from cineflow.models.inference import VideoScores
from cineflow.tasks import Binary, Regression
from cineflow.tasks.metrics import brier, calibration, roc_auc
from cineflow.tasks.recalibration import apply_classifier, fit_classifier, fit_regression
from helpers import settings


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def drawn(rng, truth):
    """Class indices drawn from the true probabilities [N, K]."""
    return (rng.random(len(truth))[:, None] > np.cumsum(truth, 1)).sum(1)


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (20_000, 3))
    truth = softmax(z)
    y = drawn(rng, truth)
    overconfident = softmax(2.5 * z)  # the model's logits are 2.5 times the true ones
    fitted = fit_classifier("temperature", y, overconfident)
    assert fitted["temperature"] == pytest.approx(2.5, abs=0.15)
    assert np.abs(apply_classifier(fitted, overconfident) - truth).mean() < 0.02


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_already_calibrated_scores_stay_put(method):
    rng = np.random.default_rng(1)
    truth = softmax(rng.normal(0, 1.5, (20_000, 2)))
    y = drawn(rng, truth)
    fitted = fit_classifier(method, y, truth)
    after = apply_classifier(fitted, truth)
    assert np.abs(after - truth).mean() < 0.02 and np.allclose(after.sum(1), 1)
    if method == "temperature":
        assert fitted["temperature"] == pytest.approx(1.0, abs=0.05)
    if method == "platt":
        assert fitted["a"] == pytest.approx(1.0, abs=0.08) and fitted["b"] == pytest.approx(0.0, abs=0.08)


def test_platt_moves_a_shifted_fold_onto_the_probability_scale_and_keeps_its_ranking():
    rng = np.random.default_rng(2)
    logit = rng.normal(0, 2, 5_000)
    y = (rng.random(5_000) < 1 / (1 + np.exp(-logit))).astype(int)
    shifted = 1 / (1 + np.exp(-(0.5 * logit + 2.0)))  # too flat and too high: the fold's own scale
    scores = np.stack([1 - shifted, shifted], 1)
    fitted = fit_classifier("platt", y, scores)
    after = apply_classifier(fitted, scores)
    assert fitted["a"] == pytest.approx(2.0, rel=0.1) and fitted["b"] == pytest.approx(-4.0, rel=0.1)
    before_ece, after_ece = (calibration(y == 1, s[:, 1])["ece"] for s in (scores, after))
    assert before_ece > 0.15 and after_ece < 0.03 and brier(y, after) < brier(y, scores)
    assert roc_auc(y, after[:, 1]) == pytest.approx(roc_auc(y, shifted))


def test_isotonic_is_stored_as_knots_and_applied_as_scikit_learn_would():
    rng = np.random.default_rng(3)
    p = rng.random(300)
    y = (rng.random(300) < p ** 2).astype(int)
    fitted = fit_classifier("isotonic", y, np.stack([1 - p, p], 1))
    new = rng.random(50)
    knots = fitted["knots"]
    mapped = np.stack([np.interp(1 - new, knots[0]["x"], knots[0]["y"]), np.interp(new, knots[1]["x"], knots[1]["y"])],
                      1)
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y).predict(new)
    assert np.allclose(mapped[:, 1], reference)
    assert np.allclose(apply_classifier(fitted, np.stack([1 - new, new], 1)), mapped / mapped.sum(1, keepdims=True))


def test_regression_gets_a_linear_map_and_one_class_val_is_left_alone():
    y = np.linspace(20, 70, 30)
    fitted = fit_regression("platt", y, 0.5 * y + 10)
    assert fitted["method"] == "linear" and fitted["a"] == pytest.approx(2.0) and fitted["b"] == pytest.approx(-20.0)
    kept = fit_classifier("platt", np.zeros(5, int), np.full((5, 2), 0.5))
    assert kept["method"] == "none" and "one class" in kept["note"]


def test_a_fold_tunes_its_threshold_on_recalibrated_val_and_keeps_the_raw_scores():
    rng = np.random.default_rng(4)

    def scores(n):
        y = rng.integers(0, 2, n)
        p = 1 / (1 + np.exp(-(2.0 * y - 1 + rng.normal(0, 1, n) + 3)))  # all high: a threshold near 0.95
        return y, VideoScores(np.stack([1 - p, p], 1), None, np.stack([1 - p, p], 1), np.arange(n))

    (y_val, val), (y_test, test) = scores(200), scores(100)
    rows = pd.DataFrame({"video_id": [f"v{i}" for i in range(100)], "group": np.arange(100),
                         "label": np.where(y_test, "B", "A")})
    task = Binary(("A", "B"))
    raw, _ = task.evaluate(y_val, val, y_test, test, rows, settings(EvalConfig, "evaluate", calibration="none"))
    out, table = task.evaluate(y_val, val, y_test, test, rows, settings(EvalConfig, "evaluate"))
    assert out["calibration"]["method"] == "platt" and raw["calibration"] == {"method": "none"}
    assert raw["threshold"] > 0.9 and 0.2 < out["threshold"] < 0.8  # tuned on the recalibrated val scores
    assert out["metrics"]["roc_auc"] == pytest.approx(raw["metrics"]["roc_auc"])  # a monotone map per fold
    assert out["uncalibrated"]["ece"] == pytest.approx(raw["metrics"]["ece"])
    assert raw["metrics"]["ece"] > out["metrics"]["ece"]
    assert np.allclose(task.scores_of(table, raw=True), test.mean) and "uncalibrated" not in raw
    assert np.allclose(task.scores_of(table), task.calibrate(out["calibration"], test.mean))
    regression = Regression((), "ef")
    y = rng.normal(55, 10, 50)
    video = VideoScores((0.5 * y + 20)[:, None], None, (0.5 * y + 20)[:, None], np.arange(50))
    rows = pd.DataFrame({"video_id": range(50), "group": range(50), "ef": y, "label": "x"})
    result, _ = regression.evaluate(y, video, y, video, rows, settings(EvalConfig, "evaluate"))
    assert result["metrics"]["mae"] == pytest.approx(0, abs=1e-9)
    assert result["uncalibrated"]["mae"] > 5
