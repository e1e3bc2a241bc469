"""Is this new video even like the training data? An input-shift warning for prediction and external
validation, from two sides:

- the input: frame rate, frame size, channels, frame count, the fraction of the frame inside the
  ultrasound sector, and the intensity histogram, each against the training videos of the fold;
- the model: the Mahalanobis distance of the video's embedding (the input of the model's last layer,
  averaged over its evaluation clips) to the training videos' embeddings (Ledoit-Wolf covariance), divided
  by a threshold calibrated on the val partition's distances, so that 1 is the edge of what held-out
  videos of the training distribution reach: the larger of their `evaluate.shift_quantile` quantile and the
  same quantile of a normal fitted to them (with a few dozen val videos the empirical 0.99 quantile is
  just their maximum; the normal extrapolates beyond it).

Each fold model has its reference (`results/<model>/fold_<k>/shift_reference.npz`, fitted on the fold's
train partition and calibrated on its val partition, never on test or external data). A video's
`shift_score` is the mean over the fold models of that ratio; it is `in_distribution` when the score is at
most 1 and no input check fails (`shift_reasons` lists those that do).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.covariance import LedoitWolf

from cineflow.data.store import video_frames
from cineflow.io import atomic_path
from cineflow.models.trained import TrainedModel

HIST_BINS = 16
# input checks: a value may lie this far (relative) outside the training range before it is flagged
TOLERANCE = 0.1
MASK_TOLERANCE = 0.1  # absolute, on the sector fraction
RANGES = {"source_fps": "frame rate", "height": "frame height", "width": "frame width",
          "source_frames": "frame count"}


def intensity_histogram(row) -> np.ndarray:
    """The video's grey-level histogram (16 bins, all frames and channels), as fractions."""
    frames = video_frames(row)
    counts = np.bincount((frames.reshape(-1).astype(np.int64) * HIST_BINS) // 256, minlength=HIST_BINS)
    return counts / max(1, counts.sum())


def mahalanobis(embeddings: np.ndarray, centre: np.ndarray, precision: np.ndarray) -> np.ndarray:
    diff = embeddings - centre
    return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", diff, precision, diff), 0.0))


def reference_of(trained: TrainedModel, train_rows: pd.DataFrame, val_rows: pd.DataFrame, cfg,
                 device: torch.device, seed: int) -> dict[str, np.ndarray]:
    """The reference of one fold model: a seeded sample of at most evaluate.shift_reference_videos original
    train videos (augmented copies left out) and every val video.

    Args:
        trained: the fold model, loaded.
        train_rows: the fold's train partition (manifest rows).
        val_rows: its val partition.
        cfg: the evaluate section.
        device: where the model runs.
        seed: seeds the sample.
    """
    originals = train_rows[train_rows["augment"].fillna("") == ""] if "augment" in train_rows else train_rows
    if len(originals) > cfg.shift_reference_videos:
        originals = originals.sample(cfg.shift_reference_videos, random_state=seed).sort_values("video_id")

    def embed(rows):
        return trained.embed(rows, cfg.eval_clips, device, cfg.block)

    return fit_reference(embed(originals), embed(val_rows), originals, cfg.shift_quantile)


def fit_reference(train_embeddings: np.ndarray, val_embeddings: np.ndarray, train_rows: pd.DataFrame,
                  quantile: float) -> dict[str, np.ndarray]:
    """A fold's in-distribution reference: the embeddings' centre and (shrunk) precision, the val distance
    threshold, the training ranges of the input checks, the mean intensity histogram and its threshold.

    Args:
        train_embeddings: [N, D] of (a sample of) the fold's train videos.
        val_embeddings: [M, D] of its val videos: they set the threshold.
        train_rows: manifest rows of the train videos (input features, cached frames).
        quantile: evaluate.shift_quantile.
    """
    cov = LedoitWolf().fit(train_embeddings)
    distances = mahalanobis(val_embeddings, cov.location_, cov.precision_)
    histograms = np.stack([intensity_histogram(r) for r in train_rows.itertuples(index=False)])
    centre = histograms.mean(0)
    hist_distances = np.abs(histograms - centre).sum(1)
    fitted = distances.mean() + stats.norm.ppf(quantile) * distances.std(ddof=1) if len(distances) > 1 else 0.0
    ref = {"centre": cov.location_, "precision": cov.precision_,
           "threshold": np.float64(max(np.quantile(distances, quantile), fitted, 1e-9)),
           "histogram": centre, "histogram_threshold": np.float64(np.quantile(hist_distances, quantile)),
           "channels": np.unique(train_rows["channels"].to_numpy(dtype=np.int64)),
           "mask_fraction": np.array([train_rows["mask_fraction"].min(), train_rows["mask_fraction"].max()], float)}
    for column in RANGES:
        ref[column] = np.array([train_rows[column].min(), train_rows[column].max()], dtype=float)
    return ref


def save_reference(path: str | Path, ref: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **ref)


def load_reference(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def input_reasons(row: pd.Series, histogram: np.ndarray, ref: dict[str, np.ndarray]) -> list[str]:
    """The input checks a video (a cache row, and its intensity histogram) fails against one reference, each
    naming its value and range."""
    reasons = []
    for column, name in RANGES.items():
        lo, hi = ref[column]
        value = float(row[column])
        if value and not lo * (1 - TOLERANCE) <= value <= hi * (1 + TOLERANCE):
            reasons.append(f"{name} {value:g} outside training {lo:g}-{hi:g}")
    if int(row["channels"]) not in set(ref["channels"].tolist()):
        reasons.append(f"{int(row['channels'])} channel(s), training {ref['channels'].tolist()}")
    lo, hi = ref["mask_fraction"]
    if not lo - MASK_TOLERANCE <= float(row["mask_fraction"]) <= hi + MASK_TOLERANCE:
        reasons.append(f"sector fraction {float(row['mask_fraction']):.2f} outside training {lo:.2f}-{hi:.2f}")
    distance = float(np.abs(histogram - ref["histogram"]).sum())
    if distance > float(ref["histogram_threshold"]):
        reasons.append(f"intensity histogram distance {distance:.2f} > {float(ref['histogram_threshold']):.2f}")
    return reasons


def shift_table(rows: pd.DataFrame, embeddings: list[np.ndarray], refs: list[dict[str, np.ndarray]]
                ) -> pd.DataFrame:
    """video_id, shift_score, in_distribution and shift_reasons of each video.

    Args:
        rows: the cached videos (cache rows: input features and frames).
        embeddings: each fold model's [N, D] embeddings of them.
        refs: each fold model's reference, in the same order.
    """
    ratios = [mahalanobis(e, r["centre"], r["precision"]) / float(r["threshold"]) for e, r in zip(embeddings, refs)]
    score = np.mean(ratios, axis=0)
    reasons = []
    for i, (_, row) in enumerate(rows.iterrows()):
        # flagged only where every fold's training videos disagree: the most lenient fold's reasons
        histogram = intensity_histogram(row)
        found = min((input_reasons(row, histogram, ref) for ref in refs), key=len)
        if score[i] > 1:
            found.insert(0, f"embedding distance {score[i]:.2f} x the val threshold")
        reasons.append("; ".join(found))
    return pd.DataFrame({"video_id": rows["video_id"].to_numpy(), "shift_score": score,
                         "in_distribution": [not r for r in reasons], "shift_reasons": reasons})
