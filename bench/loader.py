"""Training-loader throughput: clips from the uint8 cache versus decoding every epoch as EchoNet-Dynamic does.

Same files, same clip (32 frames, period 2), same batch size (8), same float normalised output,
one process each (num_workers=0), in the same run. Figure: speedup_vs_decode_per_epoch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from echonet_like import make_videos, save

from cineflow.cache import cache_video
from cineflow.config import CacheConfig, resolve
from cineflow.data import ClipDataset, normalise
from cineflow.sampling import ClipSpec

LENGTH, PERIOD, BATCH = 32, 2, 8


def loadvideo(filename: str) -> np.ndarray:
    """EchoNet-Dynamic's echonet.utils.loadvideo: the whole AVI into a float32 [C, F, H, W] array."""
    capture = cv2.VideoCapture(filename)
    frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    v = np.zeros((frame_count, height, width, 3), np.uint8)
    for count in range(frame_count):
        ret, frame = capture.read()
        if not ret:
            raise ValueError(f"Failed to load frame #{count} of {filename}.")
        v[count] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return v.transpose((3, 0, 1, 2))


class EchoNetStyle(Dataset):
    """echonet.datasets.Echo.__getitem__ for one random clip: decode, float, normalise, select."""

    def __init__(self, paths, mean, std, seed=0):
        self.paths = paths
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        video = loadvideo(str(self.paths[i])).astype(np.float32)
        video = (video - self.mean.reshape(3, 1, 1, 1)) / self.std.reshape(3, 1, 1, 1)
        c, f, h, w = video.shape
        if f < LENGTH * PERIOD:
            video = np.concatenate((video, np.zeros((c, LENGTH * PERIOD - f, h, w), video.dtype)), axis=1)
            f = video.shape[1]
        start = self.rng.choice(f - (LENGTH - 1) * PERIOD, 1)[0]
        return torch.from_numpy(video[:, start + PERIOD * np.arange(LENGTH)]), 0


def clips_per_second(loader, convert=None, epochs=2) -> float:
    n, tic = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _ in loader:
            x = convert(x) if convert else x
            assert x.dtype == torch.float32 and x.shape[1:] == (3, LENGTH, 112, 112)
            n += x.shape[0]
    return n / (time.perf_counter() - tic)


def main() -> None:
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="cineflow_bench_loader_"))
    paths = make_videos(work / "videos")
    cfg = CacheConfig.from_dict(resolve({"cache": {"size": 112, "color": "rgb"}})["cache"])
    rows = pd.DataFrame([cache_video(p, work / "cache" / f"{p.stem}.npy", cfg) for p in paths])
    mean, std = [0.1, 0.1, 0.1], [0.2, 0.2, 0.2]

    decode = DataLoader(EchoNetStyle(paths, np.multiply(mean, 255), np.multiply(std, 255)), batch_size=BATCH,
                        shuffle=True, num_workers=0)
    cached = DataLoader(ClipDataset(rows, np.zeros(len(rows), np.int64), ClipSpec("random", LENGTH, PERIOD)),
                        batch_size=BATCH, shuffle=True, num_workers=0)
    decode_rate = clips_per_second(decode)
    cache_rate = clips_per_second(cached, convert=lambda x: normalise(x, mean, std))
    save("loader", {
        "speedup_vs_decode_per_epoch": round(cache_rate / decode_rate, 2),
        "cache_clips_per_s": round(cache_rate, 1),
        "decode_clips_per_s": round(decode_rate, 1),
        "n_videos": len(paths), "frames_per_video": int(rows["n_frames"][0]), "clip_length": LENGTH,
        "clip_period": PERIOD, "batch_size": BATCH, "size": 112, "channels": 3, "num_workers": 0,
    })


if __name__ == "__main__":
    main()
