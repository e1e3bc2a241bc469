"""Is model A really better than model B? Paired tests on the out-of-fold predictions of the same videos.

Only models of one task, target and class list are compared. Binary ROC AUC gets DeLong's test for two
correlated ROC curves; every headline metric gets a patient-level paired bootstrap of the difference (both
models resampled with the same patients, so the pairing is kept); regression MAE also gets a Wilcoxon
signed-rank test on the patients' mean absolute errors. With more than two models the p-values of each
(metric, test) family are Holm-adjusted over the pairs.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from cineflow.evaluate.aggregate import level_name, units
from cineflow.evaluate.summary import first_repeat
from cineflow.tasks import Task
from cineflow.tasks.resampled import bootstrap_draws, percentile_ci

MULTIPLICITY = ("Holm's step-down adjustment over the model pairs, within each level, metric and test "
                "(p_value_holm); p_value is the unadjusted value")


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def comparable(tasks: dict[str, Task]) -> list[tuple[str, str]]:
    """Pairs of models with the same task, target and classes (a regression never pairs with a classifier)."""
    return [(a, b) for a, b in itertools.combinations(tasks, 2) if tasks[a].as_dict() == tasks[b].as_dict()]


def paired(oof_a: pd.DataFrame, oof_b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The two models' predictions of the videos both predicted, in one order (repeat 0 where repeated); None
    where they share no video."""
    first = [first_repeat(t) for t in (oof_a, oof_b)]
    shared = sorted(set(first[0]["video_id"]) & set(first[1]["video_id"]))
    if not shared:
        return None
    return tuple(t.set_index("video_id").loc[shared].reset_index() for t in first)


def compare_pair(task: Task, names: tuple[str, str], a: pd.DataFrame, b: pd.DataFrame, draws: tuple[dict, dict],
                 n_boot: int) -> list[dict]:
    """Every comparison of one pair of models.

    Args:
        task: their (shared) task.
        names: (model a, model b).
        a: model a's predictions of the videos both predicted (`paired`),
        b: model b's, row by row the same videos.
        draws: each model's headline metrics in the same patient resamples of these rows.
        n_boot: bootstrap resamples of patients.
    """
    groups = a["group"].to_numpy()
    whole = [task.headline_metrics(t) for t in (a, b)]
    differences = {m: draws[0][m] - draws[1][m] for m in draws[0]}
    ci = {m: percentile_ci(v) for m, v in differences.items()}
    base = {"models": list(names), "n": int(len(a)), "n_groups": int(len(set(groups)))}
    out = [{**base, **test} for test in task.paired_tests(a, b, whole, ci)]
    for m in task.headline:
        diff = whole[0][m] - whole[1][m]
        values = np.asarray(differences.get(m, []), dtype=float)
        nan_draws = int((~np.isfinite(values)).sum())  # resamples where a metric was undefined, left out
        values = values[np.isfinite(values)]
        p = float(min(1.0, 2 * min((values <= 0).mean(), (values >= 0).mean()))) if len(values) else float("nan")
        out.append({**base, "metric": m, "values": [whole[0][m], whole[1][m]], "difference": float(diff),
                    "ci95": ci.get(m, [float("nan"), float("nan")]), "p_value": p, "test": "paired_bootstrap",
                    "n_boot": n_boot, "nan_draws": nan_draws})
    return out


def compare_models(oofs: dict[str, pd.DataFrame], tasks: dict[str, Task], n_boot: int, seed: int,
                   aggregate: dict | None = None) -> dict:
    """results/comparison.json: every comparable pair's comparisons at the video level and, with
    evaluate.aggregate, at the patient (unit) level too (`level` on each row), Holm-adjusted within each
    (level, metric, test).

    Args:
        oofs: each model's out-of-fold predictions.
        tasks: each model's task.
        n_boot: bootstrap resamples of patients.
        seed: seeds the resampling.
        aggregate: evaluate.aggregate (defaults filled); None or a null `by`: the video level only. A unit level
            skipped for either model of a pair (cineflow.evaluate.aggregate) has no rows, and `skipped_levels`
            says why.
    """
    pairs = comparable(tasks)
    by = (aggregate or {}).get("by")
    levels = {"video": None, **({level_name(by): by} if by else {})}
    skipped_levels: dict[str, dict] = {}  # level -> "a vs b" -> why it has no rows (cineflow.evaluate.aggregate)
    resampled: dict[tuple, dict] = {}  # a model's draws on a set of rows: the same in each of its pairs

    def draws(name: str, level: str, table: pd.DataFrame) -> dict:
        key = (name, level, tuple(table["video_id"]))
        if key not in resampled:
            resampled[key] = (bootstrap_draws(table["group"].to_numpy(), tasks[name].headline_draws(table), n_boot,
                                              seed) if n_boot else {})
        return resampled[key]

    rows, unshared = [], []
    for a, b in pairs:
        videos = paired(oofs[a], oofs[b])
        if videos is None:
            unshared.append([a, b])
            continue
        for level, column in levels.items():
            if column is None:
                table_a, table_b = videos
            else:
                found_a, found_b = (units(tasks[a], t, aggregate) for t in videos)
                why = found_a.skipped or found_b.skipped
                if why:
                    skipped_levels.setdefault(level, {})[f"{a} vs {b}"] = why
                    continue
                table_a, table_b = found_a.table, found_b.table
            found = compare_pair(tasks[a], (a, b), table_a, table_b,
                                 (draws(a, level, table_a), draws(b, level, table_b)), n_boot)
            rows += [{**row, "level": level} for row in found]
    families: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        families.setdefault((row["level"], row["metric"], row["test"]), []).append(i)
    for members in families.values():
        finite = [i for i in members if np.isfinite(rows[i]["p_value"])]
        for i, adjusted in zip(finite, holm([rows[i]["p_value"] for i in finite])):
            rows[i]["p_value_holm"] = adjusted
    skipped = [[a, b] for a, b in itertools.combinations(tasks, 2) if (a, b) not in pairs]
    return {"pairs": rows, "multiplicity": MULTIPLICITY, "not_compared": skipped, "skipped_levels": skipped_levels,
            "no_shared_videos": unshared,
            "note": "difference = first model - second model, on the videos both predicted (pooled out-of-fold); "
                    "patient-level rows combine those videos per patient (evaluate.aggregate)"}

