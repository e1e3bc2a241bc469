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
from scipy import stats

from cineflow.evaluate.metrics import bootstrap_draws, percentile_ci
from cineflow.evaluate.summary import first_repeat
from cineflow.evaluate.tasks import Task

MULTIPLICITY = ("Holm's step-down adjustment over the model pairs, within each metric and test (p_value_holm); "
                "p_value is the unadjusted value")


def midranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    return stats.rankdata(x, method="average")


def delong(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> dict:
    """DeLong's test for the difference of two correlated ROC AUCs on the same cases (DeLong et al. 1988),
    computed with midranks (Sun & Xu 2014).

    Args:
        y: 1 for a positive case, 0 for a negative one.
        score_a: model A's positive-class score of each case.
        score_b: model B's, for the same cases in the same order.

    Returns:
        auc_a, auc_b, difference (a - b), its standard error, z, the two-sided p-value and the 95 % CI.
    """
    y = np.asarray(y).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong's test needs positive and negative cases")
    scores = np.vstack([score_a, score_b]).astype(float)  # [2, N]
    pos, neg = scores[:, y], scores[:, ~y]
    aucs, v10, v01 = [], [], []
    for k in range(2):
        both = midranks(np.concatenate([pos[k], neg[k]]))
        within_pos, within_neg = midranks(pos[k]), midranks(neg[k])
        aucs.append((both[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((both[:m] - within_pos) / n)  # each positive's share of negatives it outranks
        v01.append(1.0 - (both[m:] - within_neg) / m)  # each negative's share of positives above it
    s10, s01 = np.cov(np.asarray(v10)), np.cov(np.asarray(v01))
    cov = s10 / m + s01 / n
    diff = aucs[0] - aucs[1]
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = float(np.sqrt(max(var, 0.0)))
    z = diff / se if se > 0 else 0.0
    p = float(2 * stats.norm.sf(abs(z))) if se > 0 else 1.0
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": float(diff), "se": se, "z": float(z),
            "p_value": p, "ci95": [float(diff - 1.96 * se), float(diff + 1.96 * se)]}


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


def paired(oof_a: pd.DataFrame, oof_b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two models' predictions of the videos both predicted, in one order (repeat 0 where repeated)."""
    first = [first_repeat(t) for t in (oof_a, oof_b)]
    shared = sorted(set(first[0]["video_id"]) & set(first[1]["video_id"]))
    if not shared:
        raise ValueError("the two models share no predicted video; compare models trained on the same splits")
    return tuple(t.set_index("video_id").loc[shared].reset_index() for t in first)


def compare_pair(task: Task, names: tuple[str, str], oof_a: pd.DataFrame, oof_b: pd.DataFrame, n_boot: int,
                 seed: int) -> list[dict]:
    """Every comparison of one pair of models.

    Args:
        task: their (shared) task.
        names: (model a, model b).
        oof_a: model a's out-of-fold predictions.
        oof_b: model b's.
        n_boot: bootstrap resamples of patients.
        seed: seeds the resampling.
    """
    a, b = paired(oof_a, oof_b)
    y, groups = task.truth(a), a["group"].to_numpy()
    scores = task.scores_of(a), task.scores_of(b)
    headline = task.headline_of(a), task.headline_of(b)
    whole = [h(np.arange(len(a))) for h in headline]

    def differences(rows):
        ma, mb = headline[0](rows), headline[1](rows)
        return {m: ma[m] - mb[m] for m in task.headline}

    draws = bootstrap_draws(groups, differences, n_boot, seed) if n_boot else {}
    ci = {m: percentile_ci(v) for m, v in draws.items()}
    base = {"models": list(names), "n": int(len(a)), "n_groups": int(len(set(groups)))}
    out = []
    if task.name == "binary" and len(set(y)) == 2:
        test = delong(y, scores[0][:, 1], scores[1][:, 1])
        out.append({**base, "metric": "roc_auc", "values": [test["auc_a"], test["auc_b"]],
                    "difference": test["difference"], "ci95": test["ci95"], "p_value": test["p_value"],
                    "test": "delong", "z": test["z"]})
    for m in task.headline:
        diff = whole[0][m] - whole[1][m]
        values = np.asarray(draws.get(m, []), dtype=float)
        nan_draws = int((~np.isfinite(values)).sum())  # resamples where a metric was undefined, left out
        values = values[np.isfinite(values)]
        p = float(min(1.0, 2 * min((values <= 0).mean(), (values >= 0).mean()))) if len(values) else float("nan")
        out.append({**base, "metric": m, "values": [whole[0][m], whole[1][m]], "difference": float(diff),
                    "ci95": ci.get(m, [float("nan"), float("nan")]), "p_value": p, "test": "paired_bootstrap",
                    "n_boot": n_boot, "nan_draws": nan_draws})
    if task.name == "regression":
        errors = pd.DataFrame({"group": groups, "a": np.abs(a["error"].to_numpy(dtype=float)),
                               "b": np.abs(b["error"].to_numpy(dtype=float))}).groupby("group").mean()
        diff = errors["a"] - errors["b"]
        p = float(stats.wilcoxon(errors["a"], errors["b"]).pvalue) if (diff != 0).any() else 1.0
        out.append({**base, "metric": "mae", "values": [whole[0]["mae"], whole[1]["mae"]],
                    "difference": float(whole[0]["mae"] - whole[1]["mae"]),
                    "ci95": ci.get("mae", [float("nan"), float("nan")]), "p_value": p, "test": "wilcoxon",
                    "unit": "patient mean absolute error"})
    return out


def compare_models(oofs: dict[str, pd.DataFrame], tasks: dict[str, Task], n_boot: int, seed: int) -> dict:
    """results/comparison.json: every comparable pair's comparisons, Holm-adjusted within each (metric, test).

    Args:
        oofs: each model's out-of-fold predictions.
        tasks: each model's task.
        n_boot: bootstrap resamples of patients.
        seed: seeds the resampling.
    """
    pairs = comparable(tasks)
    rows = [c for a, b in pairs for c in compare_pair(tasks[a], (a, b), oofs[a], oofs[b], n_boot, seed)]
    families: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        families.setdefault((row["metric"], row["test"]), []).append(i)
    for members in families.values():
        finite = [i for i in members if np.isfinite(rows[i]["p_value"])]
        for i, adjusted in zip(finite, holm([rows[i]["p_value"] for i in finite])):
            rows[i]["p_value_holm"] = adjusted
    skipped = [[a, b] for a, b in itertools.combinations(tasks, 2) if (a, b) not in pairs]
    return {"pairs": rows, "multiplicity": MULTIPLICITY, "not_compared": skipped,
            "note": "difference = first model - second model, on the videos both predicted (pooled out-of-fold)"}
