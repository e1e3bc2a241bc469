"""Report figures (matplotlib, no display needed): each builder takes a model's out-of-fold predictions,
its summary, per-fold metrics and histories and returns a figure, or None where it does not apply.

Figures are written as PNG files (Snakemake report items) that the HTML report embeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from cineflow.figures import plt, save_png
from cineflow.io import read_json
from cineflow.presentation import TaskView, view_of
from cineflow.registry import Registry
from cineflow.tasks import Task

Figure = Callable[["Inputs"], "plt.Figure | None"]
# metadata: alt (the figure's alt text); a task lists the figures it has (TaskView.figures), in report order
FIGURES: Registry[Figure] = Registry("figure", "TaskView.figures")


@dataclass(frozen=True)
class Inputs:
    """What the figures of one model are drawn from."""
    oof: pd.DataFrame  # out-of-fold predictions with a `fold` column
    summary: dict
    fold_metrics: list[dict]
    histories: dict[int, pd.DataFrame]

    @property
    def first(self) -> dict:
        return self.fold_metrics[0]

    @property
    def task(self) -> Task:
        return Task.from_dict(self.first["task"])

    @property
    def view(self) -> TaskView:
        return view_of(self.task)


def _folds(oof: pd.DataFrame):
    return sorted(oof.groupby("fold"), key=lambda kv: kv[0])


@FIGURES.register(name="roc", alt="ROC curves")
def roc_figure(d: Inputs):
    """ROC curves the task gives (binary: per fold and pooled; multiclass: one-vs-rest per class, pooled)."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for name, y, score, lw in d.view.roc_curves(d.oof):
        if y.nunique() == 2:
            fpr, tpr, _ = roc_curve(y, score)
            ax.plot(fpr, tpr, lw=lw, color="k" if name == "pooled" else None, label=f"{name} (AUC {auc(fpr, tpr):.2f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC (test partitions)")
    ax.legend(fontsize=7, loc="lower right")
    return fig


@FIGURES.register(name="pr", alt="Precision-recall curves")
def pr_figure(d: Inputs):
    """Precision-recall of the curves the task gives, per fold and pooled."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for name, y, score, lw in d.view.roc_curves(d.oof):
        if y.nunique() == 2:
            precision, recall, _ = precision_recall_curve(y, score)
            ax.plot(recall, precision, lw=lw, color="k" if name == "pooled" else None,
                    label=f"{name} (AP {average_precision_score(y, score):.2f})")
    ax.axhline(d.view.roc_curves(d.oof)[-1][1].mean(), ls=":", color="grey")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision", ylim=(0, 1.02), title="Precision-recall (test)")
    ax.legend(fontsize=7, loc="lower left")
    return fig


@FIGURES.register(name="confusion", alt="Confusion matrix")
def confusion_figure(d: Inputs):
    classes = list(d.task.classes)
    m = np.asarray(d.summary["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(classes), 1 + 0.6 * len(classes)))
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > m.max() / 2 else "black")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted", ylabel="true",
           title="Confusion (all folds)")
    ax.set_xticklabels(classes, rotation=30, ha="right")
    ax.set_yticklabels(classes)
    return fig


@FIGURES.register(name="calibration", alt="Calibration plot")
def calibration_figure(d: Inputs):
    """Reliability curve of the pooled predictions, with the expected calibration error; where the folds were
    recalibrated, the curve before it beside the one after."""
    pooled = d.summary["pooled"]["metrics"]
    before = d.summary.get("calibration", {}).get("pooled", {}).get("before")
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    title = f"Calibration (ECE {pooled['ece']:.3f})"
    if before is not None:
        curve = pd.DataFrame(before["reliability"])
        if not curve.empty:
            ax.plot(curve["confidence"], curve["observed"], marker="s", color="C1", alpha=0.6, label="before")
        title = f"Calibration (ECE {before['ece']:.3f} -> {pooled['ece']:.3f})"
    curve = pd.DataFrame(pooled["reliability"])
    if not curve.empty:
        ax.plot(curve["confidence"], curve["observed"], marker="o", color="C0",
                label="after" if before is not None else None)
        for row in curve.itertuples():
            ax.annotate(str(row.n), (row.confidence, row.observed), fontsize=6, xytext=(3, -8),
                        textcoords="offset points")
    if before is not None:
        ax.legend(fontsize=7, loc="upper left")
    ax.set(xlabel=f"predicted ({d.view.confidence_label})", ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1),
           title=title)
    return fig


@FIGURES.register(name="decision_curve", alt="Decision curve")
def decision_curve_figure(d: Inputs):
    """Net benefit of the pooled (recalibrated) predictions against the threshold probability, with its
    patient-bootstrap band, beside treating everyone and treating no one."""
    curve = d.summary["pooled"].get("decision_curve")
    if curve is None:
        return None
    t = np.asarray(curve["thresholds"])
    fig, ax = plt.subplots(figsize=(4.2, 4))
    if "model_ci" in curve:
        ax.fill_between(t, *curve["model_ci"], color="C0", alpha=0.2, lw=0)
    ax.plot(t, curve["model"], color="C0", label="model")
    ax.plot(t, curve["treat_all"], color="C1", ls="--", label="treat all")
    ax.axhline(0, color="grey", ls=":", label="treat none")
    top = max(max(curve["model"]), max(curve["treat_all"]), 0.01)
    ax.set(xlabel="threshold probability", ylabel="net benefit", xlim=(0, 1), ylim=(-0.1 * top, 1.1 * top),
           title="Decision curve (pooled test)")
    ax.legend(fontsize=7)
    return fig


@FIGURES.register(name="scatter", alt="Prediction vs truth")
def scatter_figure(d: Inputs):
    """Predicted against true target per fold, with the identity line."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for k, t in _folds(d.oof):
        ax.scatter(t["target"], t["prediction"], s=12, alpha=0.7, label=f"fold {k}")
    values = d.oof[["target", "prediction"]].to_numpy()
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    ax.plot([lo, hi], [lo, hi], ls=":", color="grey")
    target = d.task.target
    ax.set(xlabel=f"true {target}", ylabel=f"predicted {target}", title="Prediction vs truth (test)")
    ax.legend(fontsize=7)
    return fig


@FIGURES.register(name="bland_altman", alt="Bland-Altman plot")
def bland_altman_figure(d: Inputs):
    pooled = d.summary["pooled"]["metrics"]
    mean = (d.oof["target"] + d.oof["prediction"]) / 2
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.scatter(mean, d.oof["error"], s=12, alpha=0.7)
    for value, name, ls in [(pooled["bias"], "bias", "-"), (pooled["loa_lower"], "-1.96 sd", "--"),
                            (pooled["loa_upper"], "+1.96 sd", "--")]:
        ax.axhline(value, ls=ls, color="k", lw=1)
        ax.annotate(f"{name} {value:.1f}", (1, value), xycoords=("axes fraction", "data"), fontsize=7,
                    ha="right", va="bottom")
    target = d.task.target
    ax.set(xlabel=f"mean of true and predicted {target}", ylabel="predicted - true", title="Bland-Altman (test)")
    return fig


@FIGURES.register(name="bin_mae", alt="MAE per target bin")
def bin_mae_figure(d: Inputs):
    bins = d.summary["pooled"]["metrics"]["bins"]
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    labels = list(bins)
    bars = ax.bar(labels, [bins[b]["mae"] for b in labels], color="C1")
    for bar, b in zip(bars, labels):
        ax.annotate(f"n={bins[b]['n']}", (bar.get_x() + bar.get_width() / 2, np.nan_to_num(bar.get_height())),
                    ha="center", va="bottom", fontsize=7)
    ax.set(xlabel=f"true {d.task.target}", ylabel="MAE", title="MAE per target bin (pooled)")
    return fig


@FIGURES.register(name="uncertainty", alt="Error against uncertainty")
def uncertainty_figure(d: Inputs):
    """What the task plots against MC dropout uncertainty (only with evaluate.mc_dropout)."""
    if d.oof["uncertainty"].isna().any():
        return None
    ylabel, groups = d.view.uncertainty_points(d.oof)
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for name, part, y, colour in groups:
        ax.scatter(part["uncertainty"], y, s=14, alpha=0.7, color=colour, label=name)
    if len(groups) > 1:
        ax.legend(fontsize=7)
    ax.set(ylabel=ylabel, xlabel="MC dropout uncertainty (sd over passes)", title="Error against uncertainty (test)")
    return fig


@FIGURES.register(name="learning_curves", alt="Learning curves")
def learning_curves(d: Inputs):
    monitor = d.first["monitor"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for fold, h in sorted(d.histories.items()):
        line, = axes[0].plot(h["epoch"], h["train_loss"], lw=1, marker=".", label=f"fold {fold} train")
        axes[0].plot(h["epoch"], h["val_loss"], lw=1, ls="--", marker=".", color=line.get_color(), label=f"fold {fold} val")
        column = f"val_{monitor}" if f"val_{monitor}" in h else "val_loss"
        axes[1].plot(h["epoch"], h[column], lw=1, marker=".", label=f"fold {fold}")
        axes[1].set_ylabel(column)
    axes[0].set(xlabel="epoch", ylabel="loss", title="Loss")
    axes[1].set(xlabel="epoch", title="Validation metric")
    axes[0].legend(fontsize=6)
    axes[1].legend(fontsize=6)
    return fig


def render_figures(d: Inputs, out_dir: str | Path, skip: tuple[str, ...] = ()) -> list[dict]:
    """Write the model's figures (the task's, TaskView.figures, but those in `skip`) as PNGs; returns their index
    in report order: name, alt text and file, what the rule writes to figures.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = []
    for name in d.view.figures:
        if name in skip:
            continue
        fig = FIGURES.get(name)(d)
        if fig is not None:
            save_png(fig, out_dir / f"{name}.png")
            index.append({"name": name, "alt": FIGURES.meta(name)["alt"], "file": f"{name}.png"})
    return index


def read_index(out_dir: str | Path) -> list[dict]:
    return read_json(Path(out_dir) / "figures.json")["figures"]


def forest_figure(subgroups: dict, metric: str):
    """A forest plot of one headline metric: overall and each subgroup value, with its patient-level 95 % CI
    (a point without a bar where the subgroup is too small for one); None without subgroups."""
    rows = [("overall", subgroups["overall"])] + [(f"{column} = {v['value']}", v)
                                                  for column, values in subgroups["subgroups"].items()
                                                  for v in values]
    if len(rows) == 1:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 0.42 * len(rows) + 0.9))
    for i, (name, r) in enumerate(rows):
        value = r["metrics"].get(metric, float("nan"))
        ci = (r["ci"] or {}).get(metric)
        colour = "k" if i == 0 else ("C0" if ci else "grey")
        if ci and all(np.isfinite(ci)):
            ax.plot(ci, [i, i], color=colour, lw=1.6)
        ax.plot([value], [i], "s" if i == 0 else "o", color=colour, ms=6)
    overall = rows[0][1]["metrics"].get(metric, float("nan"))
    if np.isfinite(overall):
        ax.axvline(overall, ls=":", color="grey")
    ax.set_yticks(range(len(rows)), [f"{n} (n={r['n']})" for n, r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel=metric, title=f"{metric} by subgroup (95 % CI; grey: too few patients)")
    ax.title.set_fontsize(9)
    return fig
