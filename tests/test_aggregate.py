"""Patient-level predictions: the aggregation equals a pandas groupby, and units that disagree are left out."""

import numpy as np
import pandas as pd
import pytest

from cineflow.config import ConfigError, EvalConfig
from cineflow.evaluate.aggregate import unit_results
from cineflow.tasks import Binary, Multiclass, Regression
from helpers import settings


def videos(rng, n=60, k=2):
    group = rng.integers(0, 20, n)
    label = np.array(list("ABC"[:k]))[group % k]  # one label per patient
    probs = rng.dirichlet(np.ones(k), n)
    return pd.DataFrame({"video_id": [f"v{i}" for i in range(n)], "group": group, "label": label,
                         **{f"score_{c}": probs[:, i] for i, c in enumerate("ABC"[:k])},
                         "threshold": 0.3 + 0.1 * (group % 3), "fold": group % 3})


@pytest.mark.parametrize("how", ["mean", "median", "max"])
def test_patient_scores_equal_a_pandas_groupby(how):
    table = videos(np.random.default_rng(0))
    out, left_out = Binary(("A", "B")).aggregate(table, "group", how)
    expected = table.groupby("group")["score_B"].agg(how)
    assert left_out == [] and out["video_id"].tolist() == [str(g) for g in expected.index]
    assert np.allclose(out["score_B"], expected) and np.allclose(out["score_A"], 1 - expected)
    assert out["n_videos"].tolist() == table.groupby("group").size().tolist()
    assert out["threshold"].tolist() == table.groupby("group")["threshold"].first().tolist()
    assert (out["prediction"] == np.where(out["score_B"] >= out["threshold"], "B", "A")).all()


def test_multiclass_rows_renormalise_and_regression_averages_per_patient():
    rng = np.random.default_rng(1)
    table = videos(rng, k=3)
    out, _ = Multiclass(("A", "B", "C")).aggregate(table, "group", "max")
    expected = table.groupby("group")[["score_A", "score_B", "score_C"]].max()
    assert np.allclose(out[["score_A", "score_B", "score_C"]], expected.div(expected.sum(1), axis=0))
    target = rng.normal(55, 10, 60)
    regression = pd.DataFrame({"video_id": table["video_id"], "group": table["group"], "label": "x",
                               "target": target, "prediction": target + 2})
    out, _ = Regression((), "ef").aggregate(regression, "group", "mean")
    means = regression.groupby("group")[["target", "prediction"]].mean()
    assert np.allclose(out["target"], means["target"]) and np.allclose(out["error"], 2.0)


def test_a_patient_whose_videos_disagree_is_left_out_and_listed():
    table = videos(np.random.default_rng(2))
    sizes = table["group"].value_counts()
    first = sizes.index[sizes >= 2][0]
    rows = table.index[table["group"] == first]
    table.loc[rows[:1], "label"], table.loc[rows[1:], "label"] = "A", "B"
    cfg = settings(EvalConfig, "evaluate", bootstrap=20)
    result = unit_results(Binary(("A", "B")), table, cfg, 0)
    assert result["left_out"] == [str(first)] and result["n"] == table["group"].nunique() - 1
    assert result["n"] == result["n_groups"] and result["by"] == "group" and "decision_curve" in result
    with pytest.raises(ConfigError, match="evaluate/aggregate/by: 'study'"):
        Binary(("A", "B")).aggregate(table, "study", "mean")
    assert unit_results(Binary(("A", "B")), table, settings(EvalConfig, "evaluate", aggregate={"by": None}), 0) is None
