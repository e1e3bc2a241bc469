"""What the interactive app does with one upload, without Streamlit: check it, predict it from the bundle's
preloaded fold models in a private temporary folder, and say the result in a clinician's words.

The upload's own name is never a path: only its suffix is kept, and only when a reader knows it; the file is
written as `upload<suffix>` inside a fresh temporary folder that is removed afterwards.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from cineflow.data.readers import reader_suffixes
from cineflow.deploy.bundle import Bundle, predict_with_bundle
from cineflow.models.trained import TrainedModel
from cineflow.tasks import Task

# the ASE/ESC bands of the left-ventricular ejection fraction (%), for a regression target that is an EF
EF_BANDS = ((50.0, "normal (≥ 50 %)"), (41.0, "mildly reduced (41–49 %)"), (-math.inf, "reduced (≤ 40 %)"))


class UploadError(ValueError):
    """An upload the app refuses: the message says why and what it takes."""


@dataclass(frozen=True)
class Result:
    """One upload's prediction: the predictions table's row, its lines of text, and the Grad-CAM video's bytes."""

    row: dict
    lines: list[str]
    cam: bytes | None
    cam_format: str  # "video/mp4" or "image/png"


def upload_types() -> list[str]:
    """The suffixes (without the dot) an upload may have: every file a reader knows (videos, DICOM, images)."""
    return sorted(s.lstrip(".") for s in reader_suffixes())


def check_upload(name: str, size: int, max_mb: int) -> str:
    """The upload's suffix once its type and size are acceptable; UploadError otherwise."""
    suffix = Path(name).suffix.lower()
    if suffix.lstrip(".") not in upload_types():
        raise UploadError(f"'{suffix or name}' files are not accepted; upload a video, a DICOM cine or an image "
                          f"({', '.join(upload_types())})")
    if size > max_mb * 2**20:
        raise UploadError(f"the file is {size / 2**20:.1f} MB; the limit is {max_mb} MB")
    return suffix


def describe(row: dict, task: Task) -> list[str]:
    """The prediction in words: class probabilities, or the value (an EF with its clinical band); the fold spread
    and MC dropout uncertainty; the input-shift warning with its reasons."""
    if task.name == "regression":
        value = float(row["prediction"])
        lines = [f"Predicted {task.target or 'value'}: {value:.1f}"]
        if (task.target or "").lower() in ("ef", "lvef", "ejection_fraction"):
            lines.append(f"Category: {next(label for low, label in EF_BANDS if value >= low)}")
    else:
        lines = [f"Prediction: {row['prediction']}"] + [f"P({c}) = {float(row[f'score_{c}']):.3f}"
                                                        for c in task.classes if f"score_{c}" in row]
        if not pd.isna(row.get("threshold", math.nan)):
            lines.append(f"Decided at P({task.positive}) ≥ {float(row['threshold']):.3f}, the folds' val-tuned "
                         f"threshold (after recalibration)")
    spread = [f"fold spread (sd) {float(row['fold_sd']):.3f}" if not pd.isna(row.get("fold_sd")) else None,
              f"MC dropout sd {float(row['uncertainty']):.3f}" if not pd.isna(row.get("uncertainty")) else None]
    if any(spread):
        lines.append("Uncertainty: " + ", ".join(s for s in spread if s))
    known = row.get("in_distribution")
    if known is not None and not pd.isna(known):
        lines.append("Input check: like the training videos" if bool(known) else
                     f"WARNING: unlike the training videos: {row.get('shift_reasons') or 'its embedding is far'}")
    return lines


def predict_upload(bundle: Bundle, models: list[TrainedModel], data: bytes, suffix: str, device: torch.device,
                   mc_dropout: int = 0, seed: int = 0) -> Result:
    """The bundle's prediction and Grad-CAM of one uploaded file, made in a private temporary folder.

    Args:
        bundle: the opened bundle.
        models: its fold models, loaded once at the app's start (load_models).
        data: the file's bytes.
        suffix: its checked suffix (check_upload).
        device: where the models run.
        mc_dropout: MC dropout passes (0: none).
        seed: seeds them.
    """
    with tempfile.TemporaryDirectory(prefix="cineflow-app-") as tmp:
        work = Path(tmp)
        (work / f"upload{suffix}").write_bytes(data)
        videos = pd.DataFrame({"video_id": ["upload"], "path": [f"upload{suffix}"]})
        table = predict_with_bundle(bundle, videos, work / "frames", device, "torch", seed, mc_dropout,
                                    work / "cams", root=work, models=models)
        row = table.iloc[0].to_dict()
        if row["status"] != "ok":
            raise UploadError(f"the file could not be read: {row['reason']}")
        cam = work / "cams" / str(row["cam"]) if isinstance(row.get("cam"), str) else None
        task = Task.from_dict(bundle.metrics[0]["task"])
        return Result(row=row, lines=describe(row, task), cam=cam.read_bytes() if cam and cam.is_file() else None,
                      cam_format="image/png" if cam and cam.suffix == ".png" else "video/mp4")
