"""The statistics layer at scale: `compare` (every pair's paired bootstrap, DeLong/Wilcoxon, Holm) and
`subgroups` (per-subgroup CIs) for 7 models x 5 classes at 2,000 test videos (1,000 patients, two subgroup
columns), with evaluate.bootstrap's default of 1,000 patient resamples.

The reference is the per-resample bootstrap cineflow had before (each resample's rows handed to the task's
metrics, scikit-learn's multiclass metrics inside the loop). It is timed on REFERENCE_DRAWS resamples and its
seconds scaled to 1,000, since each resample costs the same (its per-resample time is reported too); the
vectorised layer is timed at the full 1,000. On the same REFERENCE_DRAWS draws both give the same CIs and
p-values: the largest absolute difference of any figure is reported (`max_abs_difference`). Each time is the
median of interleaved rounds after a warm-up call of each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from echonet_like import interleaved, median_spread, save

from cineflow.config import EvalConfig, section
from cineflow.evaluate.compare import compare_models
from cineflow.evaluate.subgroups import subgroup_metrics
from cineflow.tasks import Task

MODELS, CLASSES, VIDEOS, PATIENTS = 7, 5, 2000, 1000
DRAWS, REFERENCE_DRAWS, ROUNDS = 1000, 10, 2


def predictions(seed: int = 0) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Seven models' out-of-fold predictions of the same 2,000 videos (better models separate the classes
    more), and the videos' subgroup columns."""
    rng = np.random.default_rng(seed)
    classes = [f"class{i}" for i in range(CLASSES)]
    ids, groups = [f"v{i}" for i in range(VIDEOS)], rng.integers(0, PATIENTS, VIDEOS).astype(str)
    y = rng.integers(0, CLASSES, VIDEOS)
    oofs = {}
    for m in range(MODELS):
        logits = rng.normal(0, 1, (VIDEOS, CLASSES))
        logits[np.arange(VIDEOS), y] += 0.5 + 0.1 * m
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        oofs[f"model{m}"] = pd.DataFrame({"video_id": ids, "group": groups, "label": [classes[i] for i in y],
                                          **{f"score_{c}": probs[:, i] for i, c in enumerate(classes)}})
    attributes = pd.DataFrame({"video_id": ids, "sex": rng.choice(["F", "M"], VIDEOS),
                               "site": rng.choice(["A", "B", "C"], VIDEOS)})
    return oofs, attributes


def per_resample(task: Task, table: pd.DataFrame):
    """The bootstrap as it was: each resample's rows (patients' videos repeated as drawn) through the task's
    metrics, one resample at a time."""
    y, scores = task.truth(table), task.scores_of(table)

    def draws(weights: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, list] = {}
        for w in weights:
            rows = np.repeat(np.arange(len(w)), w.astype(int))
            metrics = task._metrics(y[rows], scores[rows], None)
            for k in task.headline:
                out.setdefault(k, []).append(metrics[k])
        return {k: np.asarray(v, dtype=float) for k, v in out.items()}

    return draws


def run(oofs, attributes, draws: int, reference: bool) -> dict:
    """compare + every model's subgroups, the vectorised way or (`reference`) the per-resample way."""
    original = Task.headline_draws
    if reference:
        Task.headline_draws = per_resample
    try:
        task = Task.from_dict({"name": "multiclass", "classes": [f"class{i}" for i in range(CLASSES)]})
        cfg = section(EvalConfig, "evaluate", bootstrap=draws)
        comparison = compare_models(oofs, {m: task for m in oofs}, draws, seed=0)
        subgroups = {m: subgroup_metrics(task, oof, attributes, ["sex", "site"], cfg, seed=0)
                     for m, oof in oofs.items()}
    finally:
        Task.headline_draws = original
    return {"compare": comparison, "subgroups": subgroups}


def largest_difference(a, b) -> float:
    """The largest absolute difference between the numbers of two equally shaped results (NaN where NaN)."""
    if isinstance(a, dict):
        return max([largest_difference(a[k], b[k]) for k in a] or [0.0])
    if isinstance(a, list):
        return max([largest_difference(x, y) for x, y in zip(a, b)] or [0.0])
    if isinstance(a, float):
        return 0.0 if np.isnan(a) and np.isnan(b) else abs(a - b)
    assert a == b, (a, b)
    return 0.0


def main() -> None:
    oofs, attributes = predictions()
    difference = largest_difference(run(oofs, attributes, REFERENCE_DRAWS, True),
                                    run(oofs, attributes, REFERENCE_DRAWS, False))
    seconds = interleaved({"per_resample": lambda: run(oofs, attributes, REFERENCE_DRAWS, True) and None,
                           "vectorised": lambda: run(oofs, attributes, DRAWS, False) and None}, ROUNDS)
    figures = {"models": MODELS, "classes": CLASSES, "videos": VIDEOS, "patients": PATIENTS, "draws": DRAWS,
               "reference_draws": REFERENCE_DRAWS, "rounds": ROUNDS, "pairs": MODELS * (MODELS - 1) // 2,
               "max_abs_difference": float(f"{difference:.3g}")}
    figures.update(median_spread("per_resample_s_per_1000_draws", seconds["per_resample"], 1,
                                 DRAWS / REFERENCE_DRAWS))
    figures.update(median_spread("vectorised_s_per_1000_draws", seconds["vectorised"]))
    figures["speedup"] = round(figures["per_resample_s_per_1000_draws"] / figures["vectorised_s_per_1000_draws"], 1)
    save("stats_layer", figures)


if __name__ == "__main__":
    main()
