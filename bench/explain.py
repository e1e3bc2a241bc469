"""Evaluation and explanation cost per video at EchoNet size (112 x 112 RGB, 32-frame clips, period 2).

- evaluation: all-clips test-time augmentation (every clip start, averaged), seconds per video and
  the process's peak memory above its baseline for a short (128-frame) and a 4x longer video; the
  clips stream in blocks, so the memory must not grow with the length.
- Grad-CAM: what the gradcam rule does per video: one clip's CAM on the cache, drawn on the source frames it
  came from (the source decoded again, its crop and sector mask recomputed), and the side-by-side H.264 MP4,
  seconds per video, for three sources: an EchoNet AVI (112 x 112, shown 224 x 112), a 320 x 240 ultrasound
  cine with a sector mask (640 x 240) and a 1024 x 768 cine (scaled to gradcam.max_side: 1024 x 384).
Models have random weights: only the cost is measured. Each figure is the median of 3 interleaved rounds after
a warm-up call of each (its `_spread` beside it); the peak memory is the median of the rounds' peaks.
"""

from __future__ import annotations

import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch
from echonet_like import interleaved, median_spread, save

from cineflow.config import CacheConfig, GradcamConfig, section
from cineflow.data.cache import cache_video
from cineflow.data.clips import read_clip, to_tensor
from cineflow.data.preprocess import cache_config
from cineflow.data.sampling import ClipSpec, eval_clips
from cineflow.data.store import load_frames
from cineflow.data.video_io import write_avi
from cineflow.evaluate.gradcam import on_source
from cineflow.models.architectures import build_model
from cineflow.models.cam import clip_cam, write_panels
from cineflow.models.inference import score_videos

SIZE, LENGTH, PERIOD, BLOCK = 112, 32, 2, 8
ROUNDS = 3
MODELS = {"tiny3d": ("tiny3d", {}), "r2plus1d_18": ("r2plus1d_18", {})}
GRADCAM = section(GradcamConfig, "gradcam")  # max_side 512, real-time playback

class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 5 ms."""

    def __enter__(self):
        self.process, self.base, self.peak, self.running = psutil.Process(), 0, 0, True
        self.base = self.peak = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.mb = (self.peak - self.base) / 2**20


def video(folder: Path, name: str, n_frames: int) -> dict:
    rng = np.random.default_rng(n_frames)
    path = folder / f"{name}.npy"
    np.save(path, rng.integers(0, 255, (n_frames, SIZE, SIZE, 3), dtype=np.uint8))
    return {"video_id": name, "frames_path": str(path), "n_frames": n_frames}


def main() -> None:
    torch.set_num_threads(2)
    spec = ClipSpec("random", LENGTH, PERIOD)
    figures = {"clip_length": LENGTH, "frame_size": SIZE, "block": BLOCK, "rounds": ROUNDS}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        videos = {"96_frames": video(folder, "short", 96), "384_frames": video(folder, "long", 384)}
        sources = {"112x112": source(folder, "echonet", 112, 112, sector=False),
                   "320x240": source(folder, "cine", 240, 320, sector=True),
                   "1024x768": source(folder, "large", 768, 1024, sector=True)}
        tasks, peaks = {}, {}
        for name, (arch, params) in MODELS.items():
            model = build_model(arch, 2, 3, input_size=(LENGTH, SIZE, SIZE), **params).eval()
            for label, row in videos.items():
                if name == "r2plus1d_18" and label == "384_frames":
                    continue  # minutes per video on 2 CPU cores; the memory figure comes from tiny3d
                figures[f"eval_clips_{label}"] = len(eval_clips(row["n_frames"], spec, "all"))
                tasks[f"{name}_eval_all_clips_s_per_video_{label}"] = partial(evaluate, model, row, spec,
                                                                              peaks, f"{name}_{label}")
            for label, row in sources.items():
                if name == "tiny3d" or label == "112x112":
                    tasks[f"{name}_gradcam_s_per_video_{label}"] = partial(explain, model, row, spec, folder)
        seconds = interleaved(tasks, ROUNDS)
        for key, values in seconds.items():
            figures.update(median_spread(key, values))
            if "_eval_" in key:
                model_label = key.replace("_eval_all_clips_s_per_video", "")
                name, label = model_label.rsplit("_", 2)[0], "_".join(model_label.rsplit("_", 2)[1:])
                figures[f"{name}_eval_clips_per_s_{label}"] = round(figures[f"eval_clips_{label}"]
                                                                    / figures[key], 2)
                figures[f"{name}_eval_peak_mb_above_baseline_{label}"] = round(float(np.median(peaks[model_label])), 1)
    save("explain", figures)


def evaluate(model, row: dict, spec: ClipSpec, peaks: dict, key: str) -> float:
    """All-clips evaluation of one video; its peak memory above the baseline goes to peaks[key]."""
    with PeakRSS() as peak:
        tic = time.perf_counter()
        score_videos(model, pd.DataFrame([row]), [0.5] * 3, [0.25] * 3, spec, "all", torch.device("cpu"), BLOCK)
        seconds = time.perf_counter() - tic
    peaks.setdefault(key, []).append(peak.mb)
    return seconds


def source(folder: Path, name: str, height: int, width: int, sector: bool) -> dict:
    """A 96-frame 50 fps MJPG AVI of this size (an ultrasound fan of speckle with burned-in text when `sector`),
    cached as cineflow caches it (112 px RGB, the sector masked): its manifest row."""
    rng = np.random.default_rng(height)
    yy, xx = np.mgrid[0:height, 0:width]
    fan = (np.abs(np.arctan2(xx - width / 2, yy + 4)) < 0.6) & (np.hypot(xx - width / 2, yy + 4) < height * 0.8)
    frames = rng.integers(40, 220, (96, height, width, 3), dtype=np.uint8)
    if sector:
        frames[:, ~fan] = 0
        frames[:, 4:12, 4:40] = 250  # static text outside the fan
    path = write_avi(folder / f"{name}.avi", frames, 50)
    cfg = section(CacheConfig, "cache", size=SIZE, color="rgb", sector_mask=sector)
    row = cache_video(path, folder / f"{name}.npy", cfg)
    assert row["status"] == "ok", row["reason"]
    return row


def explain(model, row: dict, spec: ClipSpec, folder: Path) -> None:
    """What the gradcam rule does for one video: the CAM of its first evaluation clip, drawn on its source, as MP4."""
    indices = eval_clips(row["n_frames"], spec, 1)[0]
    raw = read_clip(load_frames(row["frames_path"]), indices)
    heat = clip_cam(model, to_tensor(raw, [0.5] * 3, [0.25] * 3), 1, model.cam_layer)
    panels, rate, _ = on_source(row, cache_config(row["preprocess"]), indices, heat, raw, "true A | pred B | p=0.90",
                                GRADCAM)
    write_panels(folder / "cam", panels, rate)


if __name__ == "__main__":
    main()
