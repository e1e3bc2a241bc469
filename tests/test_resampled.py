"""The vectorised patient bootstrap equals the per-resample metrics on the same draws (to rounding)."""

import numpy as np
import pytest

from cineflow.tasks import Binary, Multiclass, Regression
from cineflow.tasks import resampled
from cineflow.tasks.resampled import bootstrap_draws, bootstrap_weights


def draws_by_loop(groups, n, seed):
    """The resamples as the per-draw bootstrap made them: rows of the drawn patients, concatenated."""
    unique, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    rng = np.random.default_rng(seed)
    return [np.concatenate([members[g] for g in rng.integers(0, len(unique), len(unique))]) for _ in range(n)]


def test_count_weights_are_the_per_draw_resamples():
    groups = np.array(list("aabbbcdde"))
    weights = bootstrap_weights(groups, 40, seed=7)
    for w, rows in zip(weights, draws_by_loop(groups, 40, 7)):
        assert np.array_equal(w, np.bincount(rows, minlength=len(groups)))
    assert all(len(set(w[groups == g])) == 1 for w in weights for g in set(groups))  # a patient moves whole


@pytest.mark.parametrize("task", [Binary(("A", "B")), Multiclass(("A", "B", "C", "D")), Regression((), "EF")])
def test_vectorised_metrics_equal_the_metrics_of_each_resample(task):
    rng = np.random.default_rng(3)
    n = 30
    groups = rng.integers(0, 8, n)  # few patients: some resamples miss a class
    if isinstance(task, Regression):
        y = np.round(rng.normal(50, 10, n))
        scores = (y + rng.normal(0, 5, n))[:, None]
    else:
        k = len(task.classes)
        y = rng.integers(0, k, n)
        scores = np.round(rng.dirichlet(np.ones(k), n), 1)  # coarse: many ties in every ranking
        scores[np.arange(n), y] += 0.3 * rng.random(n)
        scores /= scores.sum(1, keepdims=True)
    threshold = rng.choice([0.3, 0.5], n) if isinstance(task, Binary) else None  # each row its fold's
    one = np.flatnonzero(y == y[0])  # and a resample of one class (or target value) only: metrics undefined
    weights = np.vstack([bootstrap_weights(groups, 80, seed=1), np.bincount(one, minlength=n)])
    fast = task._draws(y, scores, threshold, weights)
    for b, rows in enumerate([*draws_by_loop(groups, 80, 1), one]):
        slow = task._metrics(y[rows], scores[rows], None if threshold is None else threshold[rows])
        for m in task.headline:
            assert fast[m][b] == pytest.approx(slow[m], abs=1e-9, nan_ok=True), (m, b)
    assert np.isnan(fast["pearson_r" if isinstance(task, Regression) else "roc_auc"][-1])


def test_chunked_resamples_equal_one_pass(monkeypatch):
    groups = np.repeat(np.arange(30), 3)
    values = np.arange(90.0)

    def mean(w):
        return {"mean": (w @ values) / w.sum(1)}

    whole = bootstrap_draws(groups, mean, 50, seed=2)["mean"]
    monkeypatch.setattr(resampled, "CELLS", 200)  # two resamples per chunk
    assert np.array_equal(bootstrap_draws(groups, mean, 50, seed=2)["mean"], whole) and len(whole) == 50
