"""Evaluation and explanation cost per video at EchoNet size (112 x 112 RGB, 32-frame clips, period 2).

- evaluation: all-clips test-time augmentation (every clip start, averaged), seconds per video and
  the process's peak memory above its baseline for a short (128-frame) and a 4x longer video; the
  clips stream in blocks, so the memory must not grow with the length.
- Grad-CAM: one clip's CAM plus the side-by-side H.264 MP4, seconds per video.
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

from cineflow.data.clips import read_clip, to_tensor
from cineflow.data.sampling import ClipSpec, eval_clips
from cineflow.data.video_io import write_mp4
from cineflow.evaluate.gradcam import clip_cam, overlay
from cineflow.evaluate.inference import score_videos
from cineflow.models.architectures import build_model

SIZE, LENGTH, PERIOD, BLOCK = 112, 32, 2, 8
ROUNDS = 3
MODELS = {"tiny3d": ("tiny3d", {}), "r2plus1d_18": ("r2plus1d_18", {})}


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
        tasks, peaks = {}, {}
        for name, (arch, params) in MODELS.items():
            model = build_model(arch, 2, 3, input_size=(LENGTH, SIZE, SIZE), **params).eval()
            for label, row in videos.items():
                if name == "r2plus1d_18" and label == "384_frames":
                    continue  # minutes per video on 2 CPU cores; the memory figure comes from tiny3d
                figures[f"eval_clips_{label}"] = len(eval_clips(row["n_frames"], spec, "all"))
                tasks[f"{name}_eval_all_clips_s_per_video_{label}"] = partial(evaluate, model, row, spec,
                                                                              peaks, f"{name}_{label}")
            tasks[f"{name}_gradcam_mp4_s_per_video"] = partial(explain, model, videos["96_frames"], spec, folder)
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


def explain(model, row: dict, spec: ClipSpec, folder: Path) -> None:
    """One clip's CAM and the side-by-side H.264 MP4."""
    raw = read_clip(np.load(row["frames_path"], mmap_mode="r"), eval_clips(row["n_frames"], spec, 1)[0])
    heat = clip_cam(model, to_tensor(raw, [0.5] * 3, [0.25] * 3), 1, model.cam_layer)
    write_mp4(folder / "cam.mp4", overlay(raw, heat, "true A | pred B | p=0.90"), 10)


if __name__ == "__main__":
    main()
