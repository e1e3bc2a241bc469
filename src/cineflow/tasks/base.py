"""The Task protocol: what training, evaluation, the summary, the statistics (comparisons, subgroups) and the
model card ask of a task. Binary, Multiclass and Regression implement it; no module outside `tasks/` and its
presentation (cineflow.presentation) names a task kind."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from cineflow.config import ConfigError
from cineflow.registry import Registry
from cineflow.tasks.metrics import calibration
from cineflow.tasks.resampled import group_bootstrap

TASKS: Registry[type["Task"]] = Registry("task", "models.<name>.task")
RAW = "raw_"  # a predictions table's scores before recalibration: raw_<score column>


def scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


@dataclass(frozen=True)
class Task(ABC):
    """One model's task. `classes` are data.classes; `target` the regression target column.

    Class attributes describe the task to the config checks and the report: `name` (its registry
    name), `loss_kind` (which losses fit: losses' `task` metadata), the default loss and monitor,
    the metrics a monitor may name, and the `headline` metrics of the result tables (the first ranks
    the models). How results are shown is the task's view (cineflow.presentation.view_of).
    """

    classes: tuple[str, ...]
    target: str | None = None

    name: ClassVar[str] = ""
    loss_kind: ClassVar[str] = ""
    default_loss: ClassVar[str] = ""
    default_monitor: ClassVar[str] = ""
    monitors: ClassVar[frozenset] = frozenset()
    headline: ClassVar[tuple[str, ...]] = ()

    # --- identity ---------------------------------------------------------------------------------
    def as_dict(self) -> dict:
        """{"name", "classes", "target"}: how a task is written to checkpoints and result files."""
        return {"name": self.name, "classes": list(self.classes), "target": self.target}

    @staticmethod
    def from_dict(d: dict) -> "Task":
        """The task of `as_dict`'s form: the one serialisation, in checkpoints and in every metrics.json."""
        return TASKS.get(d["name"])(tuple(d["classes"]), d.get("target"))

    def check(self, loss: str, loss_kind: str, monitor: str, where: str) -> None:
        """Raise ConfigError, naming the key, when the loss or the monitor does not fit this task."""
        if loss_kind != self.loss_kind:
            raise ConfigError(f"{where}/loss: '{loss}' is a {loss_kind} loss but the task is {self.name}")
        if monitor not in self.monitors:
            raise ConfigError(f"{where}/monitor: '{monitor}' is not a {self.name} metric; choose one of "
                              f"{sorted(self.monitors)}")

    # --- training ---------------------------------------------------------------------------------
    @abstractmethod
    def targets(self, rows: pd.DataFrame) -> np.ndarray:
        """What the loss is computed against, one per manifest row."""

    @abstractmethod
    def batch_targets(self, y: np.ndarray) -> np.ndarray:
        """What the batch samplers balance (class indices; all equal where there are no classes)."""

    @abstractmethod
    def output_bias(self, y_train: np.ndarray) -> float | None:
        """The output layer's starting bias, or None to keep the architecture's."""

    @abstractmethod
    def val_metrics(self, y: np.ndarray, scores: np.ndarray) -> dict:
        """Scalar metrics on the val partition for model selection; `loss` is the video-level loss."""

    # --- evaluation -------------------------------------------------------------------------------
    @abstractmethod
    def _metrics(self, y: np.ndarray, scores: np.ndarray, threshold) -> dict:
        """The task's core metrics (the bootstrap resamples these)."""

    @abstractmethod
    def _draws(self, y: np.ndarray, scores: np.ndarray, threshold, weights: np.ndarray) -> dict[str, np.ndarray]:
        """The core metrics of many resamples at once (cineflow.tasks.resampled): `weights` [B, N] counts how
        often each row is drawn in each resample; each value is `_metrics` of the rows repeated so."""

    @abstractmethod
    def metrics(self, y: np.ndarray, scores: np.ndarray, threshold, cfg) -> dict:
        """The full metric set of metrics.json."""

    @abstractmethod
    def decide(self, y_val: np.ndarray, val_scores: np.ndarray, rule: str):
        """The decision threshold tuned on val (None where the task has none)."""

    @abstractmethod
    def fit_calibration(self, method: str, y_val: np.ndarray, val_scores: np.ndarray) -> dict:
        """The recalibration (tasks.recalibration) of evaluate.calibration fitted on val: a JSON object."""

    @abstractmethod
    def calibrate(self, calibration: dict | None, scores: np.ndarray) -> np.ndarray:
        """[N, K] scores through a fitted recalibration (unchanged for None or none)."""

    @abstractmethod
    def calibration_figures(self, y: np.ndarray, scores: np.ndarray, cfg) -> dict:
        """What recalibration changes, for the before/after table: ranking, calibration error, Brier score
        (regression: MAE and bias)."""

    @abstractmethod
    def settings(self, threshold, cfg) -> dict:
        """What metrics.json records about the decision (threshold, positive class or target)."""

    @abstractmethod
    def outputs(self, scores: np.ndarray, spread: np.ndarray | None, threshold) -> pd.DataFrame:
        """What is predicted for each row, without the truth (the columns of a prediction table)."""

    @abstractmethod
    def table(self, rows: pd.DataFrame, y: np.ndarray, scores: np.ndarray, spread, threshold) -> pd.DataFrame:
        """The predictions table of test videos: outputs beside the truth.

        Args:
            rows: the test partition's manifest rows.
            y: their targets.
            scores: [N, K] video scores.
            spread: [N, K] MC dropout spread, or None.
            threshold: the decision threshold, or None.
        """

    @abstractmethod
    def score_columns(self) -> list[str]:
        """The columns of a predictions table that hold the [N, K] scores."""

    @abstractmethod
    def truth(self, table: pd.DataFrame) -> np.ndarray:
        """Targets of a predictions table."""

    def scores_of(self, table: pd.DataFrame, raw: bool = False) -> np.ndarray:
        """The [N, K] scores a predictions table was made from (`raw`: before recalibration, RAW columns)."""
        return table[[(RAW if raw else "") + c for c in self.score_columns()]].to_numpy(dtype=float)

    @abstractmethod
    def uncertainty_metrics(self, table: pd.DataFrame) -> dict:
        """How well MC dropout's spread flags errors."""

    def evaluate(self, y_val, val, y_test, test, test_rows: pd.DataFrame, cfg) -> tuple[dict, pd.DataFrame]:
        """(metrics.json content, predictions table) of one fold; `val`/`test` are inference.VideoScores.

        The recalibration (evaluate.calibration) is fitted on val and applied to val and test; the threshold
        (binary) is tuned on the recalibrated val scores and applied unchanged to test. Video scores are the
        mean over clips; `clip_metrics` scores every clip on its own. Where a recalibration was fitted, the
        table keeps the scores before it (RAW columns) and `uncalibrated` the test figures before it.

        Args:
            y_val: val targets.
            val: val video scores.
            y_test: test targets.
            test: test video scores.
            test_rows: the test partition's manifest rows.
            cfg: the evaluate section.
        """
        calibration = self.fit_calibration(cfg.calibration, y_val, val.mean)
        val_scores, test_scores = self.calibrate(calibration, val.mean), self.calibrate(calibration, test.mean)
        threshold = self.decide(y_val, val_scores, cfg.threshold)
        table = self.table(test_rows, y_test, test_scores, test.spread, threshold)
        metrics = self.metrics(y_test, test_scores, threshold, cfg)
        if test.spread is not None:
            metrics.update(self.uncertainty_metrics(table))
        out = {**self.settings(threshold, cfg), "calibration": calibration, "metrics": metrics,
               "clip_metrics": scalars(self.metrics(y_test[test.owner], self.calibrate(calibration, test.clips),
                                                    threshold, cfg)),
               "n_test_clips": int(len(test.owner)),
               "val_metrics": scalars(self.metrics(y_val, val_scores, threshold, cfg))}
        if cfg.calibration != "none":
            out["uncalibrated"] = self.calibration_figures(y_test, test.mean, cfg)
            for name, column in zip(self.score_columns(), test.mean.T):
                table[RAW + name] = column
        return out, table

    def headline_metrics(self, table: pd.DataFrame) -> dict[str, float]:
        """The headline metrics of all rows of a predictions table, each row decided with its own fold's
        threshold: the point estimates beside the bootstraps' CIs, from the same code (`headline_draws`, every
        row drawn once). Only the core metrics: calibration and bins are not headline figures."""
        return {k: float(v[0]) for k, v in self.headline_draws(table)(np.ones((1, len(table)))).items()}

    def headline_draws(self, table: pd.DataFrame):
        """[B, rows] counts -> the headline metrics of each of B resamples of the rows of a predictions table
        (each row decided with its own fold's threshold), as [B] arrays."""
        y, scores = self.truth(table), self.scores_of(table)
        threshold = table["threshold"].to_numpy(dtype=float) if "threshold" in table else None

        def draws(weights: np.ndarray) -> dict[str, np.ndarray]:
            part = self._draws(y, scores, threshold, weights)
            return {k: part[k] for k in self.headline}

        return draws

    def pooled(self, oof: pd.DataFrame, cfg, seed: int) -> dict:
        """Metrics of all folds' test predictions together (each fold's own threshold), group-bootstrap
        95 % CIs of the headline metrics, and how many bootstrap draws were NaN (`nan_draws`)."""
        y, scores = self.truth(oof), self.scores_of(oof)
        threshold = oof["threshold"].to_numpy(dtype=float) if "threshold" in oof else None
        metrics = self.metrics(y, scores, threshold, cfg)
        if "uncertainty" in oof and oof["uncertainty"].notna().all():
            metrics.update(self.uncertainty_metrics(oof))
        ci, nan_draws = (group_bootstrap(oof["group"].to_numpy(), self.headline_draws(oof), cfg.bootstrap, seed)
                         if cfg.bootstrap else ({}, {}))
        out = {"n": int(len(oof)), "n_groups": int(oof["group"].nunique()), "metrics": metrics, "ci": ci,
               "bootstrap": cfg.bootstrap, "nan_draws": nan_draws}
        curve = self.decision_curve(oof, cfg, seed)
        return out if curve is None else {**out, "decision_curve": curve}

    def decision_curve(self, table: pd.DataFrame, cfg, seed: int) -> dict | None:
        """Net benefit against threshold probability with treat-all and treat-none, and patient-bootstrap
        bands (None where the task makes no treat/do-not-treat decision)."""
        return None

    def combine(self, scores: np.ndarray) -> np.ndarray:
        """Scores [N, K] combined by column over a unit's videos (a mean, median or max) back into valid
        scores (classification: probabilities that sum to 1)."""
        return scores

    def unit_scores(self, table: pd.DataFrame, unit: pd.Series, how: str) -> pd.DataFrame:
        """Each unit's scores [units, K] (indexed by unit, sorted): its videos' rows of `table` combined by `how`
        (mean, median or max) and made valid scores again (`combine`)."""
        combined = pd.DataFrame(self.scores_of(table), index=table.index).groupby(unit, sort=True).agg(how)
        return pd.DataFrame(self.combine(combined.to_numpy()), index=combined.index)

    @abstractmethod
    def unit_truth(self, table: pd.DataFrame, by: str) -> tuple[pd.DataFrame, list]:
        """(one row per unit of `by` with its label and target columns, the units whose videos disagree on the
        truth and are left out)."""

    def aggregate(self, table: pd.DataFrame, by: str, how: str) -> tuple[pd.DataFrame, list]:
        """(the predictions table at the level of `by`: one row per patient or study, its videos' scores
        combined by `how`, decided with its fold's threshold, `video_id` the unit and `n_videos` beside it;
        the units left out because their videos disagree on the truth).

        A unit's videos are in one fold (the splits keep a patient together), so the unit keeps that fold's
        threshold and fold number; with a `by` that crosses folds the first video's are kept.

        Args:
            table: a predictions table (one row per video).
            by: the column to combine by (group, or a labels-table column the table carries).
            how: mean, median or max.
        """
        if by not in table:
            raise ConfigError(f"evaluate/aggregate/by: '{by}' is not a column of the predictions "
                              f"({sorted(table.columns)}); use group or a column of the labels table")
        truth, conflicting = self.unit_truth(table, by)
        keep = table[table[by].isin(truth[by])]
        units = keep.groupby(by, sort=True)
        scores = self.unit_scores(keep, keep[by], how)
        first = units.first()
        rows = truth.set_index(by).loc[scores.index].reset_index()
        groups = scores.index.to_numpy() if by == "group" else first["group"].to_numpy()
        rows = rows.assign(video_id=scores.index.astype(str), group=groups)
        threshold = first["threshold"].to_numpy(dtype=float) if "threshold" in keep else None
        out = self.table(rows, self.targets(rows), scores.to_numpy(), None, threshold)
        out["n_videos"] = units.size().to_numpy()
        for column in ("fold", "repeat"):
            if column in keep:
                out[column] = first[column].to_numpy()
        return out, conflicting

    def calibration_summary(self, oof: pd.DataFrame, cfg) -> dict | None:
        """The pooled test predictions' calibration figures before and after the folds' recalibrations (None
        where the tables have no RAW scores: no recalibration)."""
        if not all(RAW + c in oof for c in self.score_columns()):
            return None
        y = self.truth(oof)
        return {"before": self.calibration_figures(y, self.scores_of(oof, raw=True), cfg),
                "after": self.calibration_figures(y, self.scores_of(oof), cfg)}

    def paired_tests(self, a: pd.DataFrame, b: pd.DataFrame, whole: list[dict], ci: dict) -> list[dict]:
        """The task's own paired tests of two models on the same videos (beside the paired bootstrap of every
        headline metric): rows with metric, values, difference, ci95, p_value and test.

        Args:
            a: model A's predictions table, paired row by row with
            b: model B's.
            whole: each model's headline metrics on all rows.
            ci: the paired bootstrap's 95 % CI of each headline difference.
        """
        return []

    def undefined_note(self, table: pd.DataFrame) -> str | None:
        """Why some headline metrics are undefined on these rows (e.g. one class only), or None."""
        return None

    def describe(self, settings: dict) -> str:
        """What the model does, in words, for the model card (`settings`: a fold's metrics.json)."""
        return f"{self.name} classification into {', '.join(self.classes)}"

    def caveats(self, counts: pd.Series) -> list[str]:
        """The model card's caveats about the training data, from the count of videos per label."""
        return []

    def calibrated(self, out: dict, hit: np.ndarray, confidence: np.ndarray, cfg) -> dict:
        """`out` plus the expected calibration error and the reliability curve of (hit, confidence)."""
        cal = calibration(hit, confidence, cfg.calibration_bins)
        return {**out, "ece": cal["ece"], "ece_equal_mass": cal["ece_equal_mass"], "reliability": cal["reliability"]}
