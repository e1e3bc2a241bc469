"""Writing videos: AVI for raw demo data, browser-playable H.264 MP4 for the report."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cineflow.io import atomic_path


def write_avi(path: str | os.PathLike, frames: np.ndarray, fps: float) -> Path:
    """Motion-JPEG AVI, the container EchoNet-Dynamic ships its videos in."""
    import cv2

    frames = _as_rgb(frames)
    height, width = frames.shape[1:3]
    with atomic_path(Path(path), suffix=".avi") as tmp:  # OpenCV picks the container from the suffix
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot open a MJPG writer for {path}")
        try:
            for frame in frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    return Path(path)


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float) -> Path:
    """H.264 / yuv420p MP4 (PyAV + libx264): the combination every browser plays."""
    import av

    frames = _as_rgb(frames)
    # yuv420p needs even dimensions
    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]
    with atomic_path(Path(path)) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=max(1, round(fps)))
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "20", "movflags": "+faststart"}
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return Path(path)


def _as_rgb(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return np.ascontiguousarray(frames)
