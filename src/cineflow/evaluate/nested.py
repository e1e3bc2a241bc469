"""Honest model selection over a sweep (nested cross-validation).

Picking the best of several settings on the same test folds that report it is optimistic: the maximum of noisy
estimates is biased upward. In nested cross-validation each outer fold's training videos (its train and val
partitions) are split again into inner folds; every setting trains on each inner fold; the setting with the best
inner mean is chosen for that outer fold without looking at its test videos, and only then scored once on them.
The mean of those outer scores estimates how well the whole procedure (train every setting, keep the best)
works on new patients. Its gap to the inner best is the optimism of selecting on the data that scores.

The setting to deploy is chosen the same way on all the data: the best mean over every inner fold of every
outer fold, which no test video has touched.
"""

from __future__ import annotations

import numpy as np

from cineflow.tasks import Task
from cineflow.tasks.metrics import LOWER_IS_BETTER


def nested_selection(inner: dict[str, dict[str, list[float]]], outer: dict[str, dict[str, float]], metric: str
                     ) -> dict:
    """The nested choice per outer fold, the unbiased outer estimate and the optimism.

    Args:
        inner: setting (model) -> outer fold -> that setting's `metric` on each inner fold of the outer fold
            (each inner fold's held-out partition).
        outer: setting -> outer fold -> its `metric` on the outer fold's test partition.
        metric: the metric selected on (LOWER_IS_BETTER knows its direction).

    Returns:
        per_fold (outer fold, chosen setting, its inner mean, its outer score, every setting's inner mean),
        nested_estimate (mean outer score of the chosen settings), naive_estimate and naive_choice (the best
        mean outer score over settings: what picking on the test folds reports), optimism (mean of inner best
        minus outer), choice (the setting to deploy: best mean over all inner folds).
    """
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    settings = list(inner)
    folds = list(outer[settings[0]])

    def best(values: dict[str, float]) -> str:
        """The setting with the best finite value; the first listed on a tie."""
        finite = {s: v for s, v in values.items() if np.isfinite(v)}
        return max(finite, key=lambda s: sign * finite[s]) if finite else settings[0]

    per_fold = []
    for fold in folds:
        means = {s: float(np.nanmean(inner[s][fold])) if np.isfinite(inner[s][fold]).any() else float("nan")
                 for s in settings}
        chosen = best(means)
        per_fold.append({"fold": fold, "chosen": chosen, "inner_best": means[chosen],
                         "outer": float(outer[chosen][fold]), "inner_means": means})
    outer_means = {s: float(np.nanmean([outer[s][f] for f in folds])) for s in settings}
    naive = best(outer_means)
    overall = {s: float(np.nanmean(np.concatenate([inner[s][f] for f in folds]))) for s in settings}
    nested = float(np.nanmean([f["outer"] for f in per_fold]))
    return {"metric": metric, "settings": settings, "per_fold": per_fold, "nested_estimate": nested,
            "naive_estimate": outer_means[naive], "naive_choice": naive,
            "optimism": float(np.nanmean([f["inner_best"] - f["outer"] for f in per_fold])),
            "naive_optimism": outer_means[naive] - nested, "inner_means": overall, "choice": best(overall)}


def sweep_selection(settings: dict[str, dict], inner_metrics: list[dict], outer_metrics: list[dict],
                    metric: str | None) -> dict:
    """results/sweeps/<base>.json: `nested_selection` from the settings' fold metrics.json files.

    Args:
        settings: model name -> the setting's values (config.expand_sweeps).
        inner_metrics: the metrics.json of every setting's inner folds ("<k>i<j>").
        outer_metrics: the metrics.json of every setting's outer folds of repeat 0.
        metric: sweep.metric, or None for the task's first headline metric.
    """
    metric = metric or Task.from_dict(outer_metrics[0]["task"]).headline[0]
    inner: dict[str, dict[str, list[float]]] = {name: {} for name in settings}
    outer: dict[str, dict[str, float]] = {name: {} for name in settings}
    for m in inner_metrics:
        inner[m["model"]].setdefault(str(m["fold"]), []).append(float(m["metrics"][metric]))
    for m in outer_metrics:
        outer[m["model"]][str(m["fold"])] = float(m["metrics"][metric])
    return {**nested_selection(inner, outer, metric), "settings": settings}
