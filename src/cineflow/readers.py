"""Video readers in a registry keyed by file suffix; each returns RGB uint8 frames and fps."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

Reader = Callable[[Path], tuple[np.ndarray, float]]
READERS: dict[str, Reader] = {}


class UnreadableVideo(Exception):
    """A file that cannot be used; the message is the reason recorded in quarantine.csv."""


def register_reader(*suffixes: str):
    def wrap(fn: Reader) -> Reader:
        for suffix in suffixes:
            READERS[suffix.lower()] = fn
        return fn

    return wrap


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """(frames [T, H, W, 3] uint8 RGB, fps); raises UnreadableVideo with the reason."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise UnreadableVideo(f"no reader for '{path.suffix}' files (known: {sorted(READERS)})")
    if not path.is_file():
        raise UnreadableVideo("file not found")
    if path.stat().st_size == 0:
        raise UnreadableVideo("empty file (0 bytes)")
    frames, fps = reader(path)
    if len(frames) == 0:
        raise UnreadableVideo("no decodable frames (corrupt file or unsupported codec)")
    return frames, fps


@register_reader(".avi", ".mp4", ".mov", ".m4v", ".mkv")
def read_opencv(path: Path) -> tuple[np.ndarray, float]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UnreadableVideo("OpenCV cannot open the file (corrupt or unsupported container)")
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        return np.zeros((0, 1, 1, 3), np.uint8), fps
    return np.stack(frames), fps
