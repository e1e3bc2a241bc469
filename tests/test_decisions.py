"""Decision curves: net benefit by hand, the vectorised bootstrap's equal to it, and the pooled curve."""

import numpy as np
import pandas as pd
import pytest

from cineflow.config import EvalConfig
from cineflow.report.model_card import decision_line
from cineflow.tasks import Binary
from cineflow.tasks import resampled
from cineflow.tasks.metrics import net_benefit
from helpers import settings


def test_net_benefit_equals_a_hand_computation():
    y, score = np.array([1, 1, 0, 0, 1]), np.array([0.9, 0.4, 0.6, 0.2, 0.7])
    # pt 0.5: rows 0, 2, 4 treated: 2 true, 1 false positive; pt 0.25: rows 0, 1, 2, 4: 3 and 1
    assert net_benefit(y, score, np.array([0.5, 0.25])) == pytest.approx([2 / 5 - 1 / 5, 3 / 5 - 1 / 5 / 3])
    weights = np.array([[1, 1, 1, 1, 1], [2, 0, 1, 1, 0]], float)
    fast = resampled.net_benefit(y, score, np.array([0.5, 0.25]), weights)
    assert fast["model"][0] == pytest.approx([0.2, 3 / 5 - 1 / 15])
    rows = np.repeat(np.arange(5), weights[1].astype(int))  # the second resample, as rows
    assert fast["model"][1] == pytest.approx(net_benefit(y[rows], score[rows], np.array([0.5, 0.25])))
    assert fast["treat_all"][0] == pytest.approx([0.6 - 0.4, 0.6 - 0.4 / 3])


def test_the_pooled_decision_curve_has_bands_and_says_where_the_model_helps():
    rng = np.random.default_rng(0)
    n = 400
    risk = rng.beta(1, 4, n)
    y = (rng.random(n) < risk).astype(int)
    table = pd.DataFrame({"video_id": range(n), "group": np.arange(n) // 2, "label": np.where(y, "B", "A"),
                          "score_A": 1 - risk, "score_B": risk, "threshold": 0.5})
    curve = Binary(("A", "B")).pooled(table, settings(EvalConfig, "evaluate", bootstrap=200), 0)["decision_curve"]
    t = np.asarray(curve["thresholds"])
    assert len(t) == 99 and curve["treat_none"] == 0.0
    low, high = np.asarray(curve["model_ci"])
    assert np.all(low <= np.asarray(curve["model"]) + 1e-12) and np.all(np.asarray(curve["model"]) <= high + 1e-12)
    # a calibrated risk helps across the usual thresholds, not at thresholds no video's risk reaches
    useful = set(curve["beats_both"])
    assert len(useful & set(np.round(np.arange(0.15, 0.5, 0.01), 2))) >= 0.9 * 35 and risk.max() < max(t)
    assert not useful & {x for x in t if x > risk.max()}
    assert decision_line(curve).startswith("Decision curve: the model's net benefit beats treat-all")
