"""Cache build throughput versus plain OpenCV decoding of the same files, and cache bytes versus float32.

Figures: throughput_ratio_vs_opencv_decode (cache frames/s over decode-only frames/s, target >= 0.8),
bytes_ratio_vs_float32 (cached .npy bytes over the same frames as float32 RGB, as EchoNet holds them).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from echonet_like import make_videos, save

from cineflow.cache import cache_video
from cineflow.config import CacheConfig, resolve


def opencv_decode(path: Path) -> int:
    """Decode every frame and nothing else: the floor any cache build has to pay."""
    capture = cv2.VideoCapture(str(path))
    n = 0
    while True:
        ok, _ = capture.read()
        if not ok:
            break
        n += 1
    capture.release()
    return n


def main() -> None:
    cv2.setNumThreads(1)
    work = Path(tempfile.mkdtemp(prefix="cineflow_bench_cache_"))
    paths = make_videos(work / "videos")
    configs = {"grey112": {"size": 112, "color": "grey"}, "rgb112": {"size": 112, "color": "rgb"},
               "grey112_sector": {"size": 112, "color": "grey", "sector_mask": True}}
    configs = {name: CacheConfig.from_dict(resolve({"cache": c})["cache"]) for name, c in configs.items()}
    rows: dict[str, list[dict]] = {}
    seconds: dict[str, list[float]] = {name: [] for name in ["decode", *configs]}
    # interleaved rounds: this machine's speed drifts, so each round times every variant back to back
    for _ in range(5):
        tic = time.perf_counter()
        frames = sum(opencv_decode(p) for p in paths)
        seconds["decode"].append(time.perf_counter() - tic)
        for name, cfg in configs.items():
            tic = time.perf_counter()
            rows[name] = [cache_video(p, work / name / f"{p.stem}.npy", cfg) for p in paths]
            seconds[name].append(time.perf_counter() - tic)
    assert all(sum(r["n_frames"] for r in rows[name]) == frames for name in configs)

    def ratio(name: str) -> float:  # median over rounds of decode time / cache time
        return round(float(np.median(np.divide(seconds["decode"], seconds[name]))), 3)

    figures = {"opencv_decode_frames_per_s": round(frames / min(seconds["decode"]), 1)}
    for name in configs:
        cached = sum((work / name / f"{p.stem}.npy").stat().st_size for p in paths)
        as_float32 = sum(r["source_frames"] * r["height"] * r["width"] * 3 * 4 for r in rows[name])
        figures[f"cache_frames_per_s_{name}"] = round(frames / min(seconds[name]), 1)
        figures[f"throughput_ratio_{name}"] = ratio(name)
        figures[f"bytes_ratio_vs_float32_{name}"] = round(cached / as_float32, 4)
    save("cache", {
        # headline: the default preprocessing (grey: echo is grey, EchoNet stores it as 3 equal channels)
        # at EchoNet's 112 x 112; RGB and the sector mask are reported beside it
        "throughput_ratio_vs_opencv_decode": figures["throughput_ratio_grey112"],
        "bytes_ratio_vs_float32": figures["bytes_ratio_vs_float32_grey112"],
        **figures,
        "n_videos": len(paths), "frames_per_video": frames // len(paths), "rounds": 5,
    })


if __name__ == "__main__":
    main()
