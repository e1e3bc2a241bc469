import numpy as np
import pytest
from sklearn import metrics as skm

from cineflow.evaluate.summary import summarize
from cineflow.report.model_card import ci_text, mean_sd
from cineflow.tasks.resampled import group_bootstrap
from cineflow.tasks.metrics import (
    binary_metrics,
    binned_mae,
    bland_altman,
    calibration,
    cutoff_aucs,
    is_better,
    tune_threshold,
)


def test_binary_metrics_on_a_worked_example():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.8, 0.4, 0.7, 0.9, 0.95])
    m = binary_metrics(y, s, threshold=0.5)
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.75) and m["specificity"] == pytest.approx(0.75)
    assert m["mcc"] == pytest.approx(0.5)
    assert m["roc_auc"] == pytest.approx(14 / 16)


def test_threshold_rules_pick_the_separating_cut():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.55, 0.6, 0.7, 0.9])
    for rule in ("youden", "f1", "mcc"):
        t = tune_threshold(y, s, rule)
        assert 0.55 < t <= 0.6
        assert binary_metrics(y, s, t)["accuracy"] == 1.0
    assert tune_threshold(y, s, "fixed") == 0.5


def test_is_better_knows_the_direction():
    assert is_better("loss", 0.1, 0.2) and not is_better("loss", 0.3, 0.2)
    assert is_better("roc_auc", 0.9, 0.8) and is_better("roc_auc", 0.5, None)


def test_summary_has_mean_sd_and_per_fold():
    folds = [{"fold": k, "threshold": 0.5, "metrics": {"roc_auc": v, "confusion_matrix": [[1, 0], [0, 1]]}}
             for k, v in enumerate([0.8, 0.9, 1.0])]
    s = summarize(folds)
    assert s["metrics"]["roc_auc"]["mean"] == pytest.approx(0.9)
    assert s["metrics"]["roc_auc"]["std"] == pytest.approx(0.1)
    assert s["metrics"]["roc_auc"]["per_fold"] == [0.8, 0.9, 1.0]
    assert s["confusion_matrix"] == [[3, 0], [0, 3]]


def test_calibration_of_perfect_and_overconfident_scores():
    rng = np.random.default_rng(0)
    confidence = rng.random(20_000)
    calibrated = rng.random(20_000) < confidence
    assert calibration(calibrated, confidence)["ece"] < 0.02
    overconfident = calibration(rng.random(20_000) < 0.5, np.full(20_000, 0.95), n_bins=10)
    assert overconfident["ece"] == pytest.approx(0.45, abs=0.02)
    assert overconfident["reliability"] == [pytest.approx({"bin": 9, "confidence": 0.95, "observed": 0.5,
                                                           "n": 20_000}, abs=0.02)]


def test_regression_bins_bland_altman_and_cutoff_aucs():
    y = np.array([20, 35, 45, 60, 80.0])
    pred = y + np.array([2, -2, 4, 0, -6.0])
    bins = binned_mae(y, pred, [30, 40, 55, 70])
    assert bins == {"<30": {"mae": 2.0, "n": 1}, "30-40": {"mae": 2.0, "n": 1}, "40-55": {"mae": 4.0, "n": 1},
                    "55-70": {"mae": 0.0, "n": 1}, ">=70": {"mae": 6.0, "n": 1}}
    ba = bland_altman(y, pred)
    sd = np.std(pred - y, ddof=1)
    assert ba["bias"] == pytest.approx(-0.4) and ba["loa_upper"] - ba["loa_lower"] == pytest.approx(2 * 1.96 * sd)
    aucs = cutoff_aucs(y, pred, [40, 50])
    assert aucs == {"auc_below_40": 1.0, "auc_below_50": 1.0}  # a lower prediction ranks "below" first
    assert np.isnan(cutoff_aucs(y, pred, [10])["auc_below_10"])  # no video below: undefined, not 0.5


def test_group_bootstrap_resamples_patients_and_is_reproducible():
    # two patients with four identical videos each: resampling videos would give 8 independent draws
    groups = np.repeat(["p1", "p2"], 4)
    values = np.repeat([0.0, 1.0], 4)
    seen = []

    def mean(weights):
        seen.extend(weights.sum(1))
        return {"mean": (weights @ values) / weights.sum(1)}

    ci, nan_draws = group_bootstrap(groups, mean, n=200, seed=1)
    assert set(seen) == {8}  # whole patients, each with all its videos
    assert ci["mean"] == [0.0, 1.0] and nan_draws == {}  # only 0, 0.5 or 1 can occur
    assert group_bootstrap(groups, mean, n=50, seed=3) == group_bootstrap(groups, mean, n=50, seed=3)


def test_nan_bootstrap_draws_are_counted_and_shown_beside_the_ci():
    # "both" is undefined (NaN) in every resample that drew one patient twice: a quarter each way
    groups = np.array(["p1", "p2"])

    def both(weights):
        return {"both": np.where((weights > 0).all(1), 1.0, np.nan), "size": weights.sum(1)}

    ci, nan_draws = group_bootstrap(groups, both, n=400, seed=0)
    assert ci["both"] == [1.0, 1.0] and 150 < nan_draws["both"] < 250 and "size" not in nan_draws
    result = {"ci": ci, "nan_draws": nan_draws}
    assert ci_text(result, "both") == f" [1.000, 1.000] ({nan_draws['both']} NaN draws left out)"
    assert ci_text(result, "size") == " [2.000, 2.000]"
    assert ci_text({"ci": {"x": [float("nan")] * 2}, "nan_draws": {"x": 5}}, "x") == ""


def test_a_single_fold_has_no_sd():
    s = summarize([{"fold": 0, "threshold": 0.5, "metrics": {"roc_auc": 0.8}}])
    assert np.isnan(s["metrics"]["roc_auc"]["std"])
    assert mean_sd(s["metrics"]["roc_auc"]) == "0.800 (one fold, no sd)" and "±" not in mean_sd(s["metrics"]["roc_auc"])
    assert mean_sd({"mean": 0.8, "std": 0.05}) == "0.800 ± 0.050"


def test_binary_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(4)
    for _ in range(20):
        y = rng.integers(0, 2, 40)
        score = np.clip(0.3 * y + rng.random(40) * 0.8, 0, 1)
        t = rng.random()
        m, pred = binary_metrics(y, score, t), (score >= t).astype(int)
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
        assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
        assert m["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0))
        assert m["recall"] == pytest.approx(skm.recall_score(y, pred, zero_division=0))
        assert m["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0))
        assert m["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
        assert m["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    per_row = binary_metrics(np.array([0, 1, 0, 1]), np.array([0.2, 0.4, 0.6, 0.9]), np.array([0.3, 0.3, 0.7, 0.7]))
    assert per_row["accuracy"] == 1.0  # each row against its own fold's threshold


def test_fast_ranking_metrics_equal_scikit_learns_with_ties():
    rng = np.random.default_rng(5)
    for _ in range(50):
        n = int(rng.integers(3, 120))
        y = rng.integers(0, 2, n)
        if len(set(y)) < 2:
            continue
        score = np.round(rng.random(n), int(rng.integers(1, 4)))  # coarse scores: many ties
        m = binary_metrics(y, score, 0.5)
        assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
        assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, score), abs=1e-12)


def test_repeated_cross_validation_pools_each_video_once_and_gives_the_spread_over_repeats():
    import pandas as pd

    from cineflow.config import EvalConfig
    from cineflow.evaluate.summary import summarize_model
    from cineflow.io import write_csv, write_json
    from helpers import settings

    def fold(tmp, repeat, k, rows, noise):
        rng = np.random.default_rng(10 * repeat + k)
        y = np.array([0, 1] * (len(rows) // 2))
        score = np.clip(0.5 + (y - 0.5) * 0.5 + rng.normal(0, noise, len(rows)), 0, 1)
        predictions = pd.DataFrame({"video_id": rows, "group": rows, "label": np.where(y, "REDUCED", "NORMAL"),
                                    "score_NORMAL": 1 - score, "score_REDUCED": score, "score": score,
                                    "prediction": np.where(score >= 0.5, "REDUCED", "NORMAL"), "uncertainty": "",
                                    "threshold": 0.5, "correct": (score >= 0.5) == y})
        m = binary_metrics(y, score, 0.5)
        name = f"{k}" if repeat == 0 else f"{k}_r{repeat}"
        write_csv(tmp / f"p{name}.csv", predictions)
        write_json(tmp / f"m{name}.json", {"fold": k, "repeat": repeat, "name": name, "threshold": 0.5,
                                           "task": {"name": "binary", "classes": ["NORMAL", "REDUCED"]}, "metrics": m})
        return tmp / f"m{name}.json", tmp / f"p{name}.csv"

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = [f"v{i}" for i in range(40)]
        files = [fold(tmp, r, k, videos[20 * k:20 * k + 20] if r == 0 else videos[::2] if k == 0 else videos[1::2],
                      0.2 + 0.2 * r) for r in range(2) for k in range(2)]
        summary, oof = summarize_model([f[0] for f in files], [f[1] for f in files],
                                       settings(EvalConfig, "evaluate", bootstrap=20), 0)
    assert summary["folds"] == ["0", "1", "0_r1", "1_r1"] and len(oof) == 80
    assert summary["pooled"]["n"] == 40  # repeat 0: each video once
    spread = summary["repeats"]["roc_auc"]
    assert len(spread["per_repeat"]) == 2 and spread["per_repeat"][0] > spread["per_repeat"][1]  # noisier repeat
    assert spread["std"] == pytest.approx(np.std(spread["per_repeat"], ddof=1))
