"""Where cached frames live: one uint8 .npy per video, or a shard file holding many back to back, memory-mapped
when read (a clip is read without decoding or copying the video)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from cineflow.io import atomic_path

SHARD_FILE = "frames.npy"  # cache.store: shards


class ShardFile:
    """One .npy holding a shard's videos' frames back to back, written as they are decoded (a shard can
    hold more than memory): room for the header is kept at the start and filled in once the frame count
    is known, and the file is renamed into place only when complete."""

    HEADER = 128  # bytes: magic, version, length and the header text, padded; 64-byte aligned data

    def __init__(self, path: str | Path, frame_shape: tuple[int, int, int]):
        self.path, self.frame_shape, self.frames = Path(path), tuple(frame_shape), 0

    def __enter__(self) -> "ShardFile":
        self._atomic = atomic_path(self.path)
        self._fh = open(self._atomic.__enter__(), "wb")
        self._fh.write(bytes(self.HEADER))
        return self

    def append(self, frames: np.ndarray) -> int:
        """Add one video's [T, H, W, C] uint8 frames; returns the index of its first frame."""
        if frames.dtype != np.uint8 or frames.shape[1:] != self.frame_shape:
            raise ValueError(f"a shard holds uint8 frames of {self.frame_shape}, got {frames.dtype} {frames.shape[1:]}")
        offset = self.frames
        self._fh.write(np.ascontiguousarray(frames).data)
        self.frames += len(frames)
        return offset

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                text = repr({"descr": "|u1", "fortran_order": False, "shape": (self.frames, *self.frame_shape)})
                text = text.ljust(self.HEADER - 11) + "\n"
                self._fh.seek(0)
                self._fh.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1"))
        finally:
            self._fh.close()
            self._atomic.__exit__(*exc)


def load_frames(frames_path: str | Path, offset: int = 0, count: int | None = None) -> np.ndarray:
    """Memory-mapped [T, H, W, C] uint8 frames: a clip is read without decoding or copying the video.
    `offset` and `count` pick one video's frames out of a shard file."""
    frames = np.load(frames_path, mmap_mode="r")
    return frames if offset == 0 and count is None else frames[offset:None if count is None else offset + count]


def video_frames(row) -> np.ndarray:
    """The frames of one manifest row (a Series or an itertuples row: both name their columns as attributes):
    its own file, or its part of its shard's file. A table without n_frames or frame_offset means the whole file."""
    count = getattr(row, "n_frames", None)
    offset = int(getattr(row, "frame_offset", 0) or 0)
    return load_frames(row.frames_path, offset, None if count is None else int(count))
