"""Report figures as embeddable PNG data URIs (matplotlib, no display needed)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402


def to_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def roc_plot(predictions: dict[int, pd.DataFrame], positive: str) -> str:
    """ROC per fold and pooled out-of-fold."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for fold, table in sorted(predictions.items()):
        y = (table["label"] == positive).to_numpy()
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, table["score"])
            ax.plot(fpr, tpr, lw=1, alpha=0.6, label=f"fold {fold} (AUC {roc_auc_score(y, table['score']):.2f})")
    pooled = pd.concat(predictions.values())
    y = (pooled["label"] == positive).to_numpy()
    if len(np.unique(y)) == 2:
        fpr, tpr, _ = roc_curve(y, pooled["score"])
        ax.plot(fpr, tpr, lw=2.2, color="k", label=f"pooled (AUC {roc_auc_score(y, pooled['score']):.2f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC (test partitions)")
    ax.legend(fontsize=7, loc="lower right")
    return to_data_uri(fig)


def confusion_plot(matrix: list[list[int]], classes: list[str]) -> str:
    fig, ax = plt.subplots(figsize=(3.4, 3))
    m = np.asarray(matrix)
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > m.max() / 2 else "black")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title="Confusion (all folds)")
    return to_data_uri(fig)


def learning_curves(histories: dict[int, pd.DataFrame], monitor: str) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for fold, h in sorted(histories.items()):
        line, = axes[0].plot(h["epoch"], h["train_loss"], lw=1, label=f"fold {fold} train")
        axes[0].plot(h["epoch"], h["val_loss"], lw=1, ls="--", color=line.get_color(), label=f"fold {fold} val")
        column = f"val_{monitor}" if f"val_{monitor}" in h else "val_loss"
        axes[1].plot(h["epoch"], h[column], lw=1, label=f"fold {fold}")
        axes[1].set_ylabel(column)
    axes[0].set(xlabel="epoch", ylabel="loss", title="Loss")
    axes[1].set(xlabel="epoch", title="Validation metric")
    axes[0].legend(fontsize=6)
    axes[1].legend(fontsize=6)
    return to_data_uri(fig)


def regression_scatter(predictions: dict[int, pd.DataFrame], target: str) -> str:
    """Predicted against true target per fold, with the identity line."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for fold, table in sorted(predictions.items()):
        ax.scatter(table["target"], table["prediction"], s=12, alpha=0.7, label=f"fold {fold}")
    values = pd.concat([t[["target", "prediction"]] for t in predictions.values()]).to_numpy()
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    ax.plot([lo, hi], [lo, hi], ls=":", color="grey")
    ax.set(xlabel=f"true {target}", ylabel=f"predicted {target}", title="Prediction vs truth (test)")
    ax.legend(fontsize=7)
    return to_data_uri(fig)


def _roc(metrics: dict, predictions: dict[int, pd.DataFrame], summary: dict) -> dict:
    return {"alt": "ROC curves", "uri": roc_plot(predictions, metrics["positive_class"])}


def _confusion(metrics: dict, predictions: dict[int, pd.DataFrame], summary: dict) -> dict:
    return {"alt": "Confusion matrix", "uri": confusion_plot(summary["confusion_matrix"], metrics["classes"])}


def _scatter(metrics: dict, predictions: dict[int, pd.DataFrame], summary: dict) -> dict:
    return {"alt": "Prediction vs truth", "uri": regression_scatter(predictions, metrics["target"])}


# which figures each task's section shows
TASK_FIGURES = {"binary": (_roc, _confusion), "multiclass": (_confusion,), "regression": (_scatter,)}


def task_figures(task: str, metrics: dict, predictions: dict[int, pd.DataFrame], summary: dict) -> list[dict]:
    """The per-model figures for this task: [{"alt", "uri"}]."""
    return [figure(metrics, predictions, summary) for figure in TASK_FIGURES[task]]
