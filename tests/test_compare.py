"""Paired model comparison: DeLong's test against an independent implementation, Holm, the paired bootstrap
and Wilcoxon, and which models are paired at all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cineflow.evaluate.compare import compare_models, holm
from cineflow.tasks import Binary, Regression
from cineflow.tasks.metrics import delong


def delong_by_placements(y, a, b):
    """DeLong et al. (1988) as written: the Mann-Whitney kernel over every (positive, negative) pair, the
    structural components V10 and V01, and their covariance (no ranks)."""
    y = np.asarray(y).astype(bool)
    out = []
    for s in (a, b):
        x, z = s[y], s[~y]
        psi = (x[:, None] > z[None, :]).astype(float) + 0.5 * (x[:, None] == z[None, :])
        out.append((psi.mean(), psi.mean(1), psi.mean(0)))
    m, n = y.sum(), (~y).sum()
    v10 = np.array([o[1] for o in out])
    v01 = np.array([o[2] for o in out])
    s10 = (v10 - v10.mean(1, keepdims=True)) @ (v10 - v10.mean(1, keepdims=True)).T / (m - 1)
    s01 = (v01 - v01.mean(1, keepdims=True)) @ (v01 - v01.mean(1, keepdims=True)).T / (n - 1)
    cov = s10 / m + s01 / n
    diff = out[0][0] - out[1][0]
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    return out[0][0], out[1][0], diff, 2 * stats.norm.sf(abs(diff) / np.sqrt(var))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_agrees_with_an_independent_implementation(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 80)
    a = y + rng.normal(0, 0.8, 80)
    b = np.round(y * 0.5 + rng.normal(0, 1.0, 80), 1)  # rounded: ties inside and across classes
    got = delong(y, a, b)
    auc_a, auc_b, diff, p = delong_by_placements(y, a, b)
    assert got["auc_a"] == pytest.approx(auc_a, abs=1e-6)
    assert got["auc_b"] == pytest.approx(auc_b, abs=1e-6)
    assert got["difference"] == pytest.approx(diff, abs=1e-6)
    assert got["p_value"] == pytest.approx(p, abs=1e-6)
    assert got["ci95"][0] < diff < got["ci95"][1]


def test_delong_of_a_model_with_itself_is_no_difference():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert delong(y, s, s)["p_value"] == 1.0


def test_holm_steps_down_and_stays_monotone():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def binary_oof(y, score, groups, threshold=0.5):
    return pd.DataFrame({"video_id": [f"v{i}" for i in range(len(y))], "group": groups,
                         "label": np.where(y == 1, "REDUCED", "NORMAL"), "score_NORMAL": 1 - score,
                         "score_REDUCED": score, "score": score, "threshold": threshold, "fold": 0})


def test_a_better_model_wins_with_every_test_and_pairs_only_its_own_task():
    rng = np.random.default_rng(0)
    n = 120
    y = rng.integers(0, 2, n)
    groups = np.repeat(np.arange(n // 2), 2)
    good = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.15, n), 0, 1)
    poor = np.clip(0.5 + rng.normal(0, 0.25, n), 0, 1)
    task = Binary(("NORMAL", "REDUCED"))
    ef = rng.uniform(20, 70, n)
    regression = pd.DataFrame({"video_id": [f"v{i}" for i in range(n)], "group": groups, "label": "NORMAL",
                               "target": ef, "prediction": ef + 1, "score": ef + 1, "error": 1.0, "fold": 0})
    result = compare_models({"good": binary_oof(y, good, groups), "poor": binary_oof(y, poor, groups)[::-1],
                             "ef": regression},
                            {"good": task, "poor": task, "ef": Regression(("NORMAL", "REDUCED"), "ef")}, 200, 0)
    pairs = result["pairs"]
    assert {tuple(p["models"]) for p in pairs} == {("good", "poor")}
    assert sorted(map(sorted, result["not_compared"])) == [["ef", "good"], ["ef", "poor"]]
    tests = {(p["metric"], p["test"]): p for p in pairs}
    assert set(Binary.headline) == {m for m, t in tests if t == "paired_bootstrap"}
    auc = tests[("roc_auc", "delong")]
    assert auc["difference"] > 0.3 and auc["p_value"] < 1e-6 and auc["ci95"][0] > 0
    boot = tests[("roc_auc", "paired_bootstrap")]
    assert boot["difference"] == pytest.approx(auc["difference"])  # rows re-aligned by video, not by position
    assert boot["ci95"][0] > 0 and boot["p_value"] < 0.01
    assert all(p["p_value_holm"] >= p["p_value"] for p in pairs)


def test_regression_models_get_a_wilcoxon_test_on_patient_errors():
    rng = np.random.default_rng(1)
    n = 60
    truth = rng.uniform(20, 70, n)
    groups = np.arange(n)

    def oof(noise):
        pred = truth + rng.normal(0, noise, n)
        return pd.DataFrame({"video_id": [f"v{i}" for i in range(n)], "group": groups, "label": "NORMAL",
                             "target": truth, "prediction": pred, "score": pred, "error": pred - truth, "fold": 0})

    task = Regression(("NORMAL", "REDUCED"), "ef")
    result = compare_models({"sharp": oof(2.0), "blunt": oof(10.0)}, {"sharp": task, "blunt": task}, 100, 0)
    tests = {(p["metric"], p["test"]): p for p in result["pairs"]}
    wilcoxon = tests[("mae", "wilcoxon")]
    assert wilcoxon["difference"] < -4 and wilcoxon["p_value"] < 1e-4
    assert tests[("mae", "paired_bootstrap")]["ci95"][1] < 0
    assert ("roc_auc", "delong") not in tests


def test_per_fold_delong_sees_through_a_difference_made_by_pooling_differently_scaled_folds():
    rng = np.random.default_rng(2)
    n = 300
    y = rng.integers(0, 2, n)
    fold = np.repeat([0, 1, 2], n // 3)
    common = 1 / (1 + np.exp(-(1.2 * (2 * y - 1) + rng.normal(0, 1, n))))
    logit = np.log(common / (1 - common)) + np.array([-3.0, 0.0, 3.0])[fold]  # each fold on its own offset
    shifted = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.05, n))))  # the same ranking within each fold
    tables = {name: binary_oof(y, s, np.arange(n)).assign(fold=fold) for name, s in (("a", common), ("b", shifted))}
    task = Binary(("NORMAL", "REDUCED"))
    tests = {p["test"]: p for p in compare_models(tables, {"a": task, "b": task}, 0, 0)["pairs"]
             if p["metric"] == "roc_auc"}
    assert tests["delong"]["difference"] > 0.05 and tests["delong"]["p_value"] < 0.01  # pooling's artefact
    per_fold = tests["delong_per_fold"]
    assert abs(per_fold["difference"]) < 0.01 and per_fold["p_value"] > 0.05 and per_fold["folds_used"] == 3
    assert [f["fold"] for f in per_fold["per_fold"]] == [0, 1, 2]


def test_inverse_variance_combination_by_hand():
    from cineflow.tasks.metrics import inverse_variance

    out = inverse_variance([0.1, 0.3, 0.5], [0.1, 0.2, 0.0])  # the third has no spread: left out
    assert out["difference"] == pytest.approx((0.1 * 100 + 0.3 * 25) / 125)
    assert out["se"] == pytest.approx(np.sqrt(1 / 125)) and out["n_used"] == 2
