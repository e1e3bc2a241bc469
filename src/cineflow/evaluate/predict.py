"""Inference on new videos: a folder or a table of videos -> one prediction per video from the ensemble of
the fold models (the mean of their scores), with the spread over the folds (and MC dropout) as uncertainty.

New videos go through the frame cache with the settings the models were trained on (kept in the
checkpoint), so a folder of EchoNet AVIs or DICOM cine loops is read exactly as during training.
Unreadable files are listed with their reason, not fatal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cineflow.config import ConfigError, EvalConfig, GradcamConfig, check_name
from cineflow.data.cache import cache_video, leave_out
from cineflow.data.clips import read_clip, to_tensor
from cineflow.data.labels import TABLE_SUFFIXES, path_id, read_table
from cineflow.data.preprocess import cache_config
from cineflow.data.readers import reader_suffixes
from cineflow.data.sampling import eval_clips
from cineflow.data.store import video_frames
from cineflow.evaluate.gradcam import on_source
from cineflow.evaluate.shift import load_reference, shift_table
from cineflow.models.cam import clip_cam, write_panels
from cineflow.models.trained import TrainedModel
from cineflow.presentation import view_of
from cineflow.tasks import Task

STATUS_COLUMNS = ["video_id", "path", "status", "reason"]
# what prepare keeps of each cached video: its source (Grad-CAMs are drawn on it), where its frames are, and what
# the input-shift checks read
CACHED_COLUMNS = ["video_id", "source", "frames_path", "frame_offset", "n_frames", "source_fps", "source_frames",
                  "height", "width", "channels", "mask_fraction"]


def find_videos(source: str | Path) -> tuple[pd.DataFrame, Path]:
    """(table with video_id and path relative to the root, root) from a folder (every file a reader
    knows, recursively) or a table (labels.read_table: CSV, TSV, Excel, Parquet) with a `path` column (relative
    to the table's folder). A video's id is its path without the suffix, folders joined by '__' (labels.path_id),
so files of the same name in different folders stay apart."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in reader_suffixes())
        paths = [p.relative_to(source).as_posix() for p in files]
        return pd.DataFrame({"video_id": [path_id(p) for p in paths], "path": paths}), source
    if source.suffix.lower() in TABLE_SUFFIXES:
        table = read_table(source)
        if "path" not in table:
            raise ConfigError(f"{source}: a prediction table needs a `path` column (columns: {list(table.columns)})")
        if "video_id" not in table:
            table["video_id"] = [path_id(p) for p in table["path"]]
        for i, video_id in enumerate(table["video_id"], start=1):
            check_name(video_id, f"{source} row {i} video_id")
        duplicated = table["video_id"][table["video_id"].duplicated()]
        if len(duplicated):
            raise ConfigError(f"{source}: duplicate video_id {sorted(set(duplicated))[:5]}; ids must be unique")
        return table[["video_id", "path"]].astype(str), source.parent
    raise ConfigError(f"predict input {source} is neither a folder nor a table of videos "
                      f"({', '.join(TABLE_SUFFIXES)})")


def prepare(videos: pd.DataFrame, root: Path, preprocess: dict, work_dir: Path, listed: str = "table"
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cached rows: CACHED_COLUMNS, status of every video). The files are read with the training's frame-cache
    settings (`preprocess`, from the checkpoint); `listed`: "table" or "folder", where the videos came from
    (what a skipped file's reason tells the user to do)."""
    cfg = cache_config(preprocess)  # new videos: a file each
    rows, status = [], []
    for video in videos.itertuples(index=False):
        row = cache_video(root / video.path, work_dir / f"{video.video_id}.npy", cfg,
                          leave_out(listed, settings_fixed=True))
        status.append({"video_id": video.video_id, "path": video.path, "status": row["status"],
                       "reason": row["reason"]})
        if row["status"] == "ok":
            rows.append({**row, "video_id": video.video_id})
    return pd.DataFrame(rows, columns=CACHED_COLUMNS), pd.DataFrame(status, columns=STATUS_COLUMNS)


def predict_new_videos(source: str | Path | pd.DataFrame, model_paths: list[str | Path | TrainedModel],
                       fold_metrics: list[dict], cfg: EvalConfig, work_dir: str | Path, device: torch.device,
                       seed: int = 0, gradcam: GradcamConfig | None = None, cam_dir: str | Path | None = None,
                       references: list[str | Path] | None = None, root: str | Path | None = None) -> pd.DataFrame:
    """One row per input video: status, the ensemble's scores, prediction and uncertainty, and with
    `references` the input-shift warning (shift_score, in_distribution, shift_reasons: see evaluate.shift).

    Each fold model's scores go through its fold's recalibration before the mean; binary decisions use the mean
    of the folds' val-tuned thresholds. With `gradcam`, one MP4 (PNG for images) per video goes into `cam_dir`,
    the CAMs of the fold models averaged.

    Args:
        source: a folder of videos, a CSV/Parquet table with a path column, or a table (video_id, path)
            of files under `root`.
        model_paths: the fold models' checkpoints, or their records loaded (an ONNX bundle's sessions).
        fold_metrics: the folds' metrics.json contents (recalibrations, thresholds), in model_paths' order.
        cfg: the evaluate section (eval_clips, block, mc_dropout).
        work_dir: where new videos are cached while they are scored.
        device: where the models run.
        seed: seeds MC dropout.
        gradcam: the gradcam section, or None for no CAMs.
        cam_dir: where the CAMs go.
        references: each fold model's shift_reference.npz, in the order of `model_paths`; None: no warning.
        root: the folder the paths of a `source` table are relative to; None: the working folder (absolute
            paths read as they are).
    """
    work_dir = Path(work_dir)
    models = [p if isinstance(p, TrainedModel) else TrainedModel.load(p, device) for p in model_paths]
    if models[0].preprocess is None:
        raise ValueError(f"{model_paths[0]} records no frame-cache settings; retrain it with this version")
    task = models[0].task
    videos, root = (source, Path(root or Path.cwd())) if isinstance(source, pd.DataFrame) else find_videos(source)
    listed = "table" if isinstance(source, pd.DataFrame) or not Path(source).is_dir() else "folder"
    rows, status = prepare(videos, root, models[0].preprocess, work_dir / "frames", listed)
    if rows.empty:
        return status
    means, spreads, embeddings = [], [], []
    for trained, metrics in zip(models, fold_metrics):
        scores = trained.score(rows, cfg.eval_clips, device, cfg.block, cfg.mc_dropout, seed)
        means.append(task.calibrate(metrics.get("calibration"), scores.mean))  # each fold on its val's scale
        spreads.append(scores.spread)
        if references:
            embeddings.append(trained.embed(rows, cfg.eval_clips, device, cfg.block))
    mean = np.mean(means, axis=0)
    thresholds = [m["threshold"] for m in fold_metrics]
    threshold = float(np.mean(thresholds)) if thresholds and thresholds[0] is not None else None
    out = task.outputs(mean, None, threshold)
    per_fold = [task.outputs(m, s, threshold) for m, s in zip(means, spreads)]
    out["fold_sd"] = np.std([f["score"].to_numpy() for f in per_fold], axis=0) if len(models) > 1 else np.nan
    if cfg.mc_dropout:  # the MC spread of each fold model's score, averaged over the fold models
        out["uncertainty"] = np.mean([f["uncertainty"].to_numpy() for f in per_fold], axis=0)
    out.insert(0, "video_id", rows["video_id"].to_numpy())
    if references:
        shift = shift_table(rows, embeddings, [load_reference(p) for p in references])
        out = out.merge(shift, on="video_id", how="left")
    if gradcam is not None and cam_dir is not None:
        out["cam"] = render_cams(models, rows, out, task, gradcam, Path(cam_dir))
    read = rows[[c for c in CACHED_COLUMNS if c not in ("source", "frames_path", "frame_offset")]]
    return status.merge(out, on="video_id", how="left").merge(read, on="video_id", how="left").assign(
        n_models=len(models))


def aggregate_predictions(task: Task, table: pd.DataFrame, units: pd.Series, how: str) -> pd.DataFrame:
    """One row per unit (patient, study: the values of `units`, indexed by video_id) from the videos predicted
    (status ok): their scores combined by `how` (evaluate.aggregate), decided with the folds' mean threshold,
    and how many videos each combines. Videos without a unit are left out.

    Args:
        task: the model's task.
        table: predict_new_videos' table.
        units: each video's unit, indexed by video_id.
        how: mean, median or max.
    """
    ok = table[(table["status"] == "ok") & table["video_id"].isin(units.dropna().index)]
    unit = ok["video_id"].map(units).astype(str)
    combined = task.unit_scores(ok, unit, how)
    threshold = float(ok["threshold"].iloc[0]) if "threshold" in ok and len(ok) else None
    out = task.outputs(combined.to_numpy(), None, threshold).drop(columns="uncertainty")
    out.insert(0, units.name or "unit", combined.index.to_numpy())
    out.insert(1, "n_videos", unit.value_counts().loc[combined.index].to_numpy())
    return out


def render_cams(models: list[TrainedModel], rows: pd.DataFrame, out: pd.DataFrame, task: Task, cfg: GradcamConfig,
                cam_dir: Path) -> list[str]:
    """The fold models' CAMs of each video's first evaluation clip, averaged, drawn on the source's frames as
    original | overlay (gradcam.on_source).

    Args:
        models: the fold models, loaded.
        rows: the cached new videos.
        out: their predictions (one row per video, in order).
        task: which output to explain and the caption.
        cfg: the gradcam section.
        cam_dir: where the files go.
    """
    cam_dir.mkdir(parents=True, exist_ok=True)
    view = view_of(task)
    cache = cache_config(models[0].preprocess)
    names = []
    for (_, row), pred in zip(rows.iterrows(), out.itertuples(index=False)):
        frames = video_frames(row)
        heats = []
        for trained in models:  # the folds of one model: one clip spec
            indices = eval_clips(int(row["n_frames"]), trained.clip_spec, 1)[0]
            raw = read_clip(frames, indices)
            clip = to_tensor(raw, trained.normalisation["mean"], trained.normalisation["std"])
            heats.append(clip_cam(trained.module, clip, view.cam_output(pred.prediction, trained.output),
                                  cfg.target_layer or trained.module.cam_layer))
        panels, rate, _ = on_source(row, cache, indices, np.mean(heats, axis=0), raw,
                                    view.prediction_caption(pred), cfg)
        names.append(write_panels(cam_dir / str(row["video_id"]), panels, rate))
    return names



