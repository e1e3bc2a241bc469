"""Grad-CAM of a model on one clip, and the panels that show it (the frame | the frame with the map), written
as a browser-playable MP4: shared by the gradcam stage (test videos), cineflow-predict (new videos) and the
training's periodic CAMs (models.<name>.gradcam_every), so that all three draw alike."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from cineflow.data.video_io import write_mp4
from cineflow.io import atomic_path
from cineflow.models.architectures import get_module


def clip_cam(model: torch.nn.Module, clip: torch.Tensor, target_output: int, layer: str) -> np.ndarray:
    """[T, H, W] CAM in [0, 1], min-max scaled over the whole clip (not per frame), computed on the
    model's device."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=model, target_layers=[get_module(model, layer)],
                 reshape_transform=getattr(model, "cam_reshape", None)) as cam:
        heat = cam(input_tensor=clip[None].to(next(model.parameters()).device),
                   targets=[ClassifierOutputTarget(target_output)])
    return heat[0]


def overlay(frames: np.ndarray, heat: np.ndarray, caption: str, mask: np.ndarray | None = None) -> np.ndarray:
    """[T, H, W, C] uint8 frames + [T, H, W] heat in [0, 1] -> [T, band + H, 2W, 3] RGB panels: the caption on a
    black band above original | overlay, so no text covers the image.

    The colour goes only where the model looks (`mask`, [H, W] bool; None: everywhere): outside it the overlay
    shows the frame as it is.
    """
    import cv2

    if mask is None:
        mask = np.ones(frames.shape[1:3], bool)
    band = caption_band(caption, 2 * frames.shape[2])
    out = []
    for frame, cam in zip(frames, heat):
        rgb = frame if frame.shape[-1] == 3 else np.repeat(frame, 3, axis=-1)
        if cam.shape != rgb.shape[:2]:
            cam = cv2.resize(cam, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        colour = cv2.cvtColor(cv2.applyColorMap(np.uint8(255 * np.clip(cam, 0, 1)), cv2.COLORMAP_JET),
                              cv2.COLOR_BGR2RGB)
        blend = np.where(mask[..., None], 0.55 * rgb + 0.45 * colour, rgb).astype(np.uint8)
        out.append(np.concatenate([band, np.concatenate([rgb, blend], axis=1)], axis=0))
    return np.stack(out)


def caption_band(caption: str, width: int) -> np.ndarray:
    """[h, width, 3] uint8: the caption in white on black, its size following the width (at most 0.8), its
    ' | '-separated parts wrapped onto more lines where one line does not fit; h is even (H.264's yuv420p)."""
    import cv2

    face = cv2.FONT_HERSHEY_SIMPLEX
    parts = caption.split(" | ")
    widest = max(cv2.getTextSize(part, face, 1.0, 1)[0][0] for part in parts)
    font = max(0.25, min(0.8, width / 800, (width - 6) / widest))
    lines, line = [], ""
    for part in parts:
        joined = f"{line} | {part}" if line else part
        if line and cv2.getTextSize(joined, face, font, 1)[0][0] > width - 6:
            lines.append(line)
            joined = part
        line = joined
    lines.append(line)
    step = round(24 * font) + 2
    band = np.zeros((-(-(step * len(lines) + 4) // 2) * 2, width, 3), np.uint8)
    for k, text in enumerate(lines):
        cv2.putText(band, text, (3, step * (k + 1)), face, font, (255, 255, 255), 1, cv2.LINE_AA)
    return band


def write_panels(path_stem: Path, panels: np.ndarray, fps: float) -> str:
    """An MP4 of the panels, or a PNG when there is one frame (an image); returns the file name."""
    if len(panels) == 1:
        ok, data = cv2.imencode(".png", cv2.cvtColor(panels[0], cv2.COLOR_RGB2BGR))
        with atomic_path(path_stem.with_suffix(".png")) as tmp:
            Path(tmp).write_bytes(data.tobytes())
        return path_stem.with_suffix(".png").name
    write_mp4(path_stem.with_suffix(".mp4"), panels, fps)
    return path_stem.with_suffix(".mp4").name
