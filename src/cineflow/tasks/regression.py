"""Regression on one numeric target column (e.g. ejection fraction)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from cineflow.tasks import recalibration, resampled
from cineflow.tasks.base import TASKS, Task
from cineflow.tasks.metrics import binned_mae, bland_altman, cutoff_aucs, regression_metrics


@TASKS.register
class Regression(Task):
    name = "regression"
    loss_kind = "regression"
    default_loss = "mse"
    default_monitor = "mae"
    monitors = frozenset({"loss", "mae", "rmse", "r2", "pearson_r"})
    headline = ("mae", "rmse", "r2", "pearson_r", "bias")

    def targets(self, rows):
        return rows[self.target].to_numpy(dtype=np.float32)

    def batch_targets(self, y):
        return np.zeros(len(y), int)  # no classes to balance

    def output_bias(self, y_train):
        """The target mean (as EchoNet-Dynamic does)."""
        return float(y_train.mean())

    def truth(self, table):
        return table["target"].to_numpy(dtype=float)

    def score_columns(self):
        return ["prediction"]

    def unit_truth(self, table, by):
        """Each unit's mean target (its label as the first video's): no unit is left out."""
        units = table.groupby(by, sort=True)
        truth = units["target"].mean().rename(self.target).to_frame().join(units["label"].first()).reset_index()
        return truth, []

    def fit_calibration(self, method, y_val, val_scores):
        return recalibration.fit_regression(method, y_val, val_scores)

    def calibrate(self, calibration, scores):
        return recalibration.apply_regression(calibration, scores)

    def calibration_figures(self, y, scores, cfg):
        """What a linear recalibration changes: MAE, RMSE and bias."""
        figures = self._metrics(y, scores)
        return {k: figures[k] for k in ("mae", "rmse", "bias")}

    def _metrics(self, y, scores, threshold=None):
        return regression_metrics(y, scores[:, 0])

    def _draws(self, y, scores, threshold, weights):
        return resampled.regression(y, scores[:, 0], weights)

    def val_metrics(self, y, scores):
        scores = self._metrics(y, scores)
        return {"loss": scores["rmse"] ** 2, **scores}

    def decide(self, y_val, val_scores, rule):
        return None

    def describe(self, settings):
        return f"regression of `{self.target}`"

    def paired_tests(self, a, b, whole, ci):
        """Wilcoxon's signed-rank test of the two models' patient mean absolute errors."""
        errors = pd.DataFrame({"group": a["group"].to_numpy(), "a": np.abs(a["error"].to_numpy(dtype=float)),
                               "b": np.abs(b["error"].to_numpy(dtype=float))}).groupby("group").mean()
        diff = errors["a"] - errors["b"]
        p = float(stats.wilcoxon(errors["a"], errors["b"]).pvalue) if (diff != 0).any() else 1.0
        return [{"metric": "mae", "values": [whole[0]["mae"], whole[1]["mae"]],
                 "difference": float(whole[0]["mae"] - whole[1]["mae"]),
                 "ci95": ci.get("mae", [float("nan"), float("nan")]), "p_value": p, "test": "wilcoxon",
                 "unit": "patient mean absolute error"}]

    def settings(self, threshold, cfg):
        return {"threshold": None}

    def metrics(self, y, scores, threshold, cfg):
        """MAE, RMSE, R², r, Bland-Altman limits, MAE per target bin and AUCs at target cut-offs."""
        pred = scores[:, 0]
        bins = binned_mae(y, pred, cfg.regression_bins)
        return {**self._metrics(y, scores), **{k: v for k, v in bland_altman(y, pred).items() if k != "bias"},
                **{f"mae_bin_{label}": b["mae"] for label, b in bins.items()}, **cutoff_aucs(y, pred, cfg.cutoffs),
                "bins": bins}

    def uncertainty_metrics(self, table):
        """Spearman correlation of MC dropout's spread with the absolute error."""
        error, spread = table["error"].abs(), table["uncertainty"]
        varied = error.nunique() > 1 and spread.nunique() > 1
        return {"mean_uncertainty": float(spread.mean()),
                "uncertainty_spearman": float(error.corr(spread, method="spearman")) if varied else float("nan")}

    def outputs(self, scores, spread, threshold):
        return pd.DataFrame({"prediction": scores[:, 0], "score": scores[:, 0],
                             "uncertainty": np.nan if spread is None else spread[:, 0]})

    def table(self, rows, y, scores, spread, threshold):
        out = self.outputs(scores, spread, threshold)
        return pd.DataFrame({"video_id": rows["video_id"].to_numpy(), "group": rows["group"].to_numpy(),
                             "label": rows["label"].to_numpy(), "target": y, **out,
                             "error": out["prediction"].to_numpy() - y})

