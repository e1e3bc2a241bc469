import numpy as np
import pandas as pd
import pytest

from cineflow.config import ConfigError, ModelConfig, check_models, load_schema, resolve
from cineflow.models.losses import LOSSES
from cineflow.tasks import TASKS, Binary, Multiclass, Regression, task_for
from cineflow.tasks.metrics import multiclass_metrics, regression_metrics
from cineflow.train.fold import model_task

CLASSES = ["NORMAL", "REDUCED"]


def checked(**over) -> dict:
    """A config with one model entry `over`, validated and checked as the workflow's parse does."""
    config = resolve({"data": {"targets": ["ef"]}, "models": {"m": over}})
    check_models(config)
    return config


def test_the_task_follows_the_config_and_the_class_count():
    assert isinstance(task_for("classification", None, CLASSES), Binary)
    assert isinstance(task_for("classification", None, list("ABCDE")), Multiclass)
    task = task_for("regression", "ef", CLASSES)
    assert isinstance(task, Regression) and task.default_loss == "mse" and task.default_monitor == "mae"
    rows = pd.DataFrame({"label": ["REDUCED", "NORMAL"], "ef": [30.5, 61.0]})
    assert task.targets(rows).tolist() == [30.5, 61.0]
    assert task_for("classification", None, CLASSES).targets(rows).tolist() == [1, 0]
    with pytest.raises(ConfigError, match=r"unknown task 'ordinal'; choose one of \['binary', 'multiclass'"):
        task_for("ordinal", None, CLASSES)


@pytest.mark.parametrize("over,message", [
    ({"task": "regression"}, "models/m/target"),
    ({"task": "regression", "target": "esv"}, r"models/m/target: 'esv' is not a column of data.targets \['ef'\]"),
    ({"task": "regression", "target": "ef", "loss": "focal"}, "models/m/loss': 'focal' is not one of"),
    ({"loss": "huber"}, "models/m/loss': 'huber' is not one of"),
    ({"monitor": "mae"}, "models/m/monitor': 'mae' is not one of"),
    ({"task": "regression", "target": "ef", "sampler": "balanced_batches"}, "models/m/sampler"),
])
def test_model_entries_that_cannot_work_stop_at_parse_time(over, message):
    with pytest.raises(ConfigError, match=message):
        checked(**over)
    checked()  # the defaults work


def test_the_schema_lists_exactly_the_losses_and_monitors_each_task_takes():
    """The parse checks model entries against the schema (no torch, no scikit-learn there); these lists
    must stay what the loss registry and the tasks say."""
    schema = load_schema()
    model = schema["definitions"]["model"]

    def enum(entry: dict) -> set:
        if "$ref" in entry:
            entry = schema["definitions"][entry["$ref"].split("/")[-1]]
        return set(entry["enum"]) - {None}

    for branch, kind in ((model["then"], "regression"), (model["else"], "classification")):
        assert enum(branch["properties"]["loss"]) == set(LOSSES.names(task=kind))
        monitors = set().union(*(t.monitors for _, t in TASKS.items() if t.loss_kind == kind))
        assert enum(branch["properties"]["monitor"]) == enum(branch["properties"]["stop_on"]) == monitors


def test_a_binary_monitor_on_a_multiclass_run_is_refused_when_it_trains():
    cfg = ModelConfig.from_dict(resolve({"models": {"m": {"monitor": "pr_auc"}}})["models"]["m"])
    assert model_task(cfg, CLASSES)[2] == "pr_auc"
    with pytest.raises(ConfigError, match="models/<name>/monitor: 'pr_auc' is not a multiclass metric"):
        model_task(cfg, list("ABC"))


def test_multiclass_metrics_on_a_worked_example():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[.8, .1, .1], [.6, .3, .1], [.2, .7, .1], [.5, .4, .1], [.1, .2, .7], [.1, .1, .8]])
    m = multiclass_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["confusion_matrix"] == [[2, 0, 0], [1, 1, 0], [0, 0, 2]]
    assert m["per_class"]["b"]["recall"] == 0.5 and m["per_class"]["a"]["precision"] == pytest.approx(2 / 3)
    assert m["f1"] == m["f1_macro"] == pytest.approx(np.mean([0.8, 2 / 3, 1.0]))
    assert m["roc_auc"] == pytest.approx(1.0)  # every class is ranked perfectly one-vs-rest


def test_regression_metrics_on_a_worked_example():
    m = regression_metrics([30, 40, 50, 60], [32, 38, 50, 64])
    assert m["mae"] == pytest.approx(2.0) and m["rmse"] == pytest.approx(np.sqrt(6.0))
    assert m["bias"] == pytest.approx(1.0) and m["r2"] == pytest.approx(1 - 24 / 500)
    assert m["pearson_r"] > 0.98
