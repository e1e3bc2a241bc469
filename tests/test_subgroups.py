"""Subgroups: per-value headline metrics with patient-level CIs; too small for a CI says so; forest plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cineflow.config import EvalConfig
from cineflow.evaluate.subgroups import subgroup_metrics
from cineflow.report.plots import forest_figure
from cineflow.tasks import Binary
from helpers import settings


def test_each_subgroup_gets_its_own_metrics_and_a_small_one_no_ci():
    rng = np.random.default_rng(0)
    n = 90
    y = rng.integers(0, 2, n)
    site = np.array(["A"] * 40 + ["B"] * 44 + ["C"] * 6)
    # site A is predicted well, site B at chance
    score = np.where(site == "A", 0.5 + (y - 0.5) * 0.8, rng.uniform(0, 1, n))
    oof = pd.DataFrame({"video_id": [f"v{i}" for i in range(n)], "group": [f"p{i}" for i in range(n)],
                        "label": np.where(y == 1, "REDUCED", "NORMAL"), "score_NORMAL": 1 - score,
                        "score_REDUCED": score, "score": score, "threshold": 0.5, "fold": 0})
    attributes = pd.DataFrame({"video_id": oof["video_id"][::-1], "site": site[::-1],
                               "sex": np.where(np.arange(n) % 2, "F", "M")})
    cfg: EvalConfig = settings(EvalConfig, "evaluate", bootstrap=200, min_subgroup=10)
    result = subgroup_metrics(Binary(("NORMAL", "REDUCED")), oof, attributes, ["site", "sex"], cfg, 0)
    sites = {v["value"]: v for v in result["subgroups"]["site"]}
    assert sorted(sites) == ["A", "B", "C"]
    assert sites["A"]["metrics"]["roc_auc"] == 1.0 and sites["A"]["n"] == 40
    assert sites["B"]["metrics"]["roc_auc"] < 0.8
    assert sites["A"]["ci"]["roc_auc"][0] > sites["B"]["ci"]["roc_auc"][1]  # the gap is beyond chance
    assert sites["C"]["ci"] is None and "too few for a CI" in sites["C"]["note"]
    assert sum(v["n"] for v in result["subgroups"]["sex"]) == n == result["overall"]["n"]
    fig = forest_figure(result, "roc_auc")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][:2] == ["overall (n=90)", "site = A (n=40)"]


def test_no_subgroup_columns_gives_the_overall_figures_and_no_forest_plot():
    oof = pd.DataFrame({"video_id": ["a", "b", "c", "d"], "group": ["1", "2", "3", "4"],
                        "label": ["NORMAL", "REDUCED", "NORMAL", "REDUCED"], "score_NORMAL": [0.9, 0.2, 0.6, 0.3],
                        "score_REDUCED": [0.1, 0.8, 0.4, 0.7], "score": [0.1, 0.8, 0.4, 0.7], "threshold": 0.5})
    result = subgroup_metrics(Binary(("NORMAL", "REDUCED")), oof, oof[["video_id"]], [],
                              settings(EvalConfig, "evaluate", bootstrap=10), 0)
    assert result["subgroups"] == {} and result["overall"]["metrics"]["roc_auc"] == pytest.approx(1.0)
    assert forest_figure(result, "roc_auc") is None
