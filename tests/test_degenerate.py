"""The statistics layer on degenerate tables: empty, one row, one class, one unit, units whose videos carry
different labels. Every statistic gives a stated result (NaN, a note, or a skip with its reason) and never
raises; the patient level is skipped where too few units with one truth remain (cineflow.evaluate.aggregate).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from cineflow.config import EvalConfig
from cineflow.evaluate.aggregate import skip_reason, unit_results
from cineflow.evaluate.compare import compare_models
from cineflow.evaluate.nested import nested_selection
from cineflow.evaluate.subgroups import subgroup_metrics
from cineflow.tasks import Binary, Multiclass, Regression
from cineflow.tasks.metrics import delong
from helpers import settings

TASKS = {"binary": Binary(("A", "B")), "multiclass": Multiclass(("A", "B", "C")),
         "regression": Regression(("A", "B"), "ef")}
CFG = settings(EvalConfig, "evaluate", bootstrap=8)


def predictions(task, labels: list[str], groups: list[int], seed: int) -> pd.DataFrame:
    """A predictions table as the evaluate rule writes it, two folds, with these labels and groups."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    rows = pd.DataFrame({"video_id": [f"v{i}" for i in range(n)], "group": groups, "label": labels})
    if isinstance(task, Regression):
        target = rng.uniform(20, 70, n)
        rows[task.target] = target
        out = task.table(rows, target, (target + rng.normal(0, 5, n))[:, None], None, None)
    else:
        y = np.array([task.classes.index(label) for label in labels], dtype=int)
        scores = rng.dirichlet(np.ones(len(task.classes)), n) if n else np.zeros((0, len(task.classes)))
        out = task.table(rows, y, scores, None, 0.5 if isinstance(task, Binary) else None)
    return out.assign(fold=np.arange(n) % 2)


def finite_or_nan(value) -> bool:
    return isinstance(value, float) and (math.isfinite(value) or math.isnan(value))


def every_statistic(task, table: pd.DataFrame) -> dict:
    """Each statistic of the layer on `table` (the ones the rules run)."""
    attributes = table[["video_id"]].assign(site=["x", "y"] * (len(table) // 2) + ["x"] * (len(table) % 2))
    return {"pooled": task.pooled(table, CFG, 0), "units": unit_results(task, table, CFG, 0),
            "subgroups": subgroup_metrics(task, table, attributes, ["site"], CFG, 0),
            "compare": compare_models({"a": table, "b": table.assign(**{c: table[c][::-1].to_numpy()
                                                                        for c in task.score_columns()})},
                                      {"a": task, "b": task}, 8, 0, CFG.aggregate),
            "headline": task.headline_metrics(table),
            "calibration": task.calibration_figures(task.truth(table), task.scores_of(table), CFG)}


tables = st.integers(0, 9).flatmap(lambda n: st.tuples(
    st.lists(st.sampled_from("AB"), min_size=n, max_size=n), st.lists(st.integers(0, 3), min_size=n, max_size=n),
    st.integers(0, 2 ** 16)))


@pytest.mark.parametrize("kind", sorted(TASKS))
@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=tables)
def test_no_statistic_raises_on_empty_one_class_or_one_unit_tables(kind, drawn):
    labels, groups, seed = drawn
    task = TASKS[kind]
    table = predictions(task, labels, groups, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's and numpy's warnings about undefined figures
        found = every_statistic(task, table)
    assert all(finite_or_nan(v) for v in found["headline"].values())
    assert set(found["headline"]) == set(task.headline)
    units = found["units"]
    if units["skipped"]:
        assert "metrics" not in units and (units["skipped"].startswith(str(units["n_units"] - units["n_left_out"]))
                                           or "different labels" in units["skipped"])
    else:
        assert units["n"] >= CFG.aggregate["min_units"]
    if not len(table):
        assert all(math.isnan(v) for v in found["headline"].values())
        assert found["compare"]["pairs"] == [] and found["compare"]["no_shared_videos"] == [["a", "b"]]


@pytest.mark.parametrize("kind", sorted(TASKS))
def test_a_table_whose_groups_mix_labels_skips_the_patient_level_with_the_reason(kind):
    """The Stall Catchers case: each project holds stalled and flowing vessels."""
    task = TASKS[kind]
    labels, groups = ["A", "B"] * 30, [i // 4 for i in range(60)]  # 15 groups, each with both labels
    table = predictions(task, labels, groups, 0)
    found = every_statistic(task, table)
    if kind == "regression":  # a unit's truth is its videos' mean target: none is left out
        assert found["units"]["skipped"] is None and found["units"]["n"] == 15
        return
    units = found["units"]
    assert units["n_left_out"] == 15 and "different labels" in units["skipped"] and "metrics" not in units
    assert found["subgroups"]["overall"]["patient_level"]["skipped"] == units["skipped"]
    assert [r["level"] for r in found["compare"]["pairs"]] == ["video"] * len(found["compare"]["pairs"])
    assert found["compare"]["skipped_levels"]["patient"]["a vs b"] == units["skipped"]
    assert np.isfinite(found["pooled"]["metrics"]["accuracy"])  # the video level is unaffected


def test_where_the_line_is_drawn():
    aggregate = {"min_units": 10, "max_left_out": 0.5}
    assert skip_reason("group", 20, 10, aggregate) is None  # half left out, ten kept: reported
    assert "different labels" in skip_reason("group", 20, 11, aggregate)
    assert skip_reason("group", 9, 0, aggregate).startswith("9 patient(s) with one truth each, fewer than")
    assert skip_reason("study", 0, 0, aggregate).startswith("0 study(s)")


def test_a_few_units_left_after_the_disagreeing_ones_are_skipped_not_scored():
    task = TASKS["binary"]
    # 12 units; 4 mix labels and 8 agree: under max_left_out, but 8 < min_units
    labels = ["A", "B"] * 8 + ["A", "A", "B", "B"] * 4
    groups = [i // 4 for i in range(16)] + [4 + i // 2 for i in range(16)]
    found = unit_results(task, predictions(task, labels, groups, 1), CFG, 0)
    assert found["n_left_out"] == 4 and found["n_units"] == 12 and "min_units = 10" in found["skipped"]


def test_delong_with_one_case_of_a_class_says_its_variance_is_undefined():
    y = np.array([1, 0, 0, 0])
    test = delong(y, np.array([0.9, 0.1, 0.2, 0.3]), np.array([0.2, 0.1, 0.5, 0.3]))
    assert test["auc_a"] == 1.0 and test["difference"] == pytest.approx(2 / 3)
    assert math.isnan(test["p_value"]) and math.isnan(test["se"]) and "two of each" in test["note"]


def test_nested_selection_with_undefined_inner_and_outer_figures_states_nan():
    nan = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = nested_selection({"a": {"0": [nan, nan]}, "b": {"0": [nan]}}, {"a": {"0": nan}, "b": {"0": nan}},
                               "roc_auc")
    assert out["choice"] == "a" and math.isnan(out["nested_estimate"]) and math.isnan(out["optimism"])
