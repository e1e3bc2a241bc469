"""Nested selection with known answers: it finds a truly better setting, and its outer estimate is unbiased
where picking the best on the test folds is not."""

import numpy as np
import pytest

from cineflow.evaluate.nested import nested_selection

FOLDS, INNER, NOISE = 5, 3, 0.03


def simulate(truth: list[float], seed: int, metric: str = "roc_auc") -> dict:
    """Each setting's inner and outer scores: its true value plus independent noise per fold."""
    rng = np.random.default_rng(seed)
    names = [f"s{i}" for i in range(len(truth))]
    inner = {s: {str(k): (t + rng.normal(0, NOISE, INNER)).tolist() for k in range(FOLDS)}
             for s, t in zip(names, truth)}
    outer = {s: {str(k): float(t + rng.normal(0, NOISE)) for k in range(FOLDS)} for s, t in zip(names, truth)}
    return nested_selection(inner, outer, metric)


def test_a_truly_better_setting_is_chosen_in_at_least_90_percent_of_seeds():
    results = [simulate([0.70, 0.70, 0.70, 0.78], seed) for seed in range(100)]
    picked = np.mean([f["chosen"] == "s3" for r in results for f in r["per_fold"]])
    assert picked >= 0.9 and np.mean([r["choice"] == "s3" for r in results]) >= 0.9
    lower = simulate([0.30, 0.22], 0, metric="mae")  # lower is better for an error
    assert lower["choice"] == "s1" and all(f["chosen"] == "s1" for f in lower["per_fold"])


def test_the_nested_estimate_is_unbiased_where_the_naive_one_is_not():
    results = [simulate([0.70] * 4, seed) for seed in range(300)]  # no setting is better: truth 0.70
    nested_bias = np.mean([r["nested_estimate"] for r in results]) - 0.70
    naive_bias = np.mean([r["naive_estimate"] for r in results]) - 0.70
    assert abs(nested_bias) < 0.004  # standard error of this mean ≈ 0.0008
    assert naive_bias > 0.008  # the best of four noisy means: ≈ 1.03 sd of a mean over 5 folds (0.0134)
    assert np.mean([r["optimism"] for r in results]) > 0.01  # the inner best is itself the best of four


def test_per_fold_fields_and_a_fold_with_no_finite_inner_score():
    result = nested_selection({"a": {"0": [0.8, 0.9], "1": [float("nan")] * 2}, "b": {"0": [0.7, 0.7], "1": [0.6]}},
                              {"a": {"0": 0.85, "1": 0.5}, "b": {"0": 0.75, "1": 0.65}}, "roc_auc")
    assert [f["chosen"] for f in result["per_fold"]] == ["a", "b"]
    assert result["nested_estimate"] == pytest.approx((0.85 + 0.65) / 2)
    assert result["per_fold"][0]["inner_best"] == pytest.approx(0.85) and result["naive_choice"] == "b"


def test_a_sweep_expands_into_named_models_and_reuses_the_entries_it_equals():
    from cineflow.config import ConfigError, expand_sweeps, resolve

    config = resolve({"models": {"tiny3d": {"arch_params": {"width": 16}}, "narrow": {"arch_params": {"width": 8}}},
                      "sweep": {"grids": {"tiny3d": {"arch_params.width": [16, 8], "lr": [0.001, 0.003]}}}})
    sweeps = expand_sweeps(config)
    assert list(sweeps["tiny3d"]) == ["tiny3d", "tiny3d__width-16__lr-0.003", "narrow", "tiny3d__width-8__lr-0.003"]
    assert sweeps["tiny3d"]["narrow"] == {"arch_params.width": 8, "lr": 0.001}
    assert config["models"]["tiny3d__width-8__lr-0.003"]["arch_params"] == {"width": 8}
    assert config["models"]["tiny3d__width-8__lr-0.003"]["lr"] == 0.003 and config["models"]["tiny3d"]["lr"] == 0.001
    for grid, message in (({"lr": [-1.0, 0.1]}, "invalid model entry"), ({"lr": [0.001]}, "1 distinct setting")):
        with pytest.raises(ConfigError, match=message):
            expand_sweeps(resolve({"models": {"tiny3d": {}}, "sweep": {"grids": {"tiny3d": grid}}}))
    with pytest.raises(ConfigError, match="sweep/grids/missing: no models: entry"):
        expand_sweeps(resolve({"sweep": {"grids": {"missing": {"lr": [0.1, 0.2]}}}}))
