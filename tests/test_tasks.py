import numpy as np
import pandas as pd
import pytest

from cineflow.config import ConfigError, resolve
from cineflow.metrics import multiclass_metrics, regression_metrics
from cineflow.tasks import Binary, Multiclass, Regression, check_model, task_for

CLASSES = ["NORMAL", "REDUCED"]


def model(**over) -> dict:
    return resolve({"models": {"m": over}})["models"]["m"]


def test_the_task_follows_the_config_and_the_class_count():
    assert isinstance(task_for("classification", None, CLASSES), Binary)
    assert isinstance(task_for("classification", None, list("ABCDE")), Multiclass)
    task = task_for("regression", "ef", CLASSES)
    assert isinstance(task, Regression) and task.default_loss == "mse" and task.default_monitor == "mae"
    rows = pd.DataFrame({"label": ["REDUCED", "NORMAL"], "ef": [30.5, 61.0]})
    assert task.targets(rows).tolist() == [30.5, 61.0]
    assert task_for("classification", None, CLASSES).targets(rows).tolist() == [1, 0]


@pytest.mark.parametrize("over,message", [
    ({"task": "regression"}, "models/m/target: a regression model needs a target"),
    ({"task": "regression", "target": "esv"}, "'esv' is not in data.targets"),
    ({"task": "regression", "target": "ef", "loss": "focal"}, "models/m/loss: 'focal' is a classification loss"),
    ({"loss": "huber"}, "'huber' is a regression loss"),
    ({"monitor": "mae"}, "models/m/monitor: 'mae' is not a binary metric"),
    ({"task": "regression", "target": "ef", "sampler": "balanced_batches"}, "models/m/sampler"),
])
def test_model_entries_that_cannot_work_stop_at_parse_time(over, message):
    with pytest.raises(ConfigError, match=message):
        check_model("m", model(**over), CLASSES, ["ef"])


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
