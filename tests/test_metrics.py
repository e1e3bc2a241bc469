import numpy as np
import pytest

from cineflow.metrics import binary_metrics, is_better, tune_threshold
from cineflow.summary import summarize


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
