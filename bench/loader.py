"""Training-loader throughput: cineflow's loader against EchoNet-Dynamic's `Echo`, warm and cold.

Both sides deliver what a training step consumes: normalised float32 clips [20, 3, 32, 112, 112] with
EchoNet's ±12-pixel pad-and-crop augmentation, on the CPU (the training device here), from the same
100 EchoNet-size AVIs (128 frames, MJPG).
- EchoNet-Dynamic: bench/echonet_reference.py, its `Echo` as published (decode the whole AVI each
  time, float32, in-place normalisation, pad=12) in its own DataLoader (batch 20, shuffle, drop_last).
- cineflow: the trainer's `training_loader` + `ready_batches` over the RGB frame cache of the same
  AVIs, `augment.shift` of 12 pixels: workers read uint8 batches into reused shared buffers, the
  training process augments and normalises them into reused float buffers.
Each is measured with the same number of DataLoader workers: 0, 2 and 4 (EchoNet's default), and 8 on
a machine with 16 or more cores; `vs_own_w0_*` is cineflow's rate with workers over its rate without. The training process runs one torch thread on both sides.
- warm: the files are in the page cache;
- cold: every file of the side being timed is evicted from the page cache
  (posix_fadvise POSIX_FADV_DONTNEED) before each epoch, so its reads hit the disk; the bytes the
  disk delivered during the epoch are recorded to show that they did.
One epoch = 500 clips (five shuffled passes; each epoch starts its workers, as in both programs). After a warm-up epoch of each, every configuration is
timed in each of 5 interleaved rounds; a figure is the median over rounds of the per-round ratio,
with its spread (max/min - 1) beside it.

Also measured:
- `cineflow_grey`: cineflow's default cache for echo, grey (EchoNet's AVIs hold grey in 3 equal
  channels): clips [20, 1, 32, 112, 112], a third of the bytes; `grey_speedup_*` against EchoNet.
- `cineflow_shards`: the RGB cache as one file per cache shard (cache.store: shards, 4 shards) instead
  of a file per video; `shards_vs_files_*` is its speed over the per-video files'.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import echonet_reference as echonet
import numpy as np
import pandas as pd
import psutil
import torch
from echonet_like import make_videos, save
from torch.utils.data import ConcatDataset

from cineflow.config import CacheConfig, resolve
from cineflow.data.augment import augmentations
from cineflow.data.cache import cache_shard, cache_video
from cineflow.data.clips import ClipDataset, Prepare
from cineflow.data.sampling import ClipSpec
from cineflow.train.batching import epoch_batches
from cineflow.train.loop import EpochBuffers, ready_batches, training_loader

N_VIDEOS, N_FRAMES, PASSES, ROUNDS = 100, 128, 5, 5
MEAN, STD = [0.1, 0.1, 0.1], [0.2, 0.2, 0.2]
CPU = torch.device("cpu")


def evict(paths: list[Path]) -> None:
    """Drop the files' pages from the page cache, so the next reads go to the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def check(x: torch.Tensor) -> None:
    """The batch is what a step consumes; one value of every 4 KiB page is read, as a step would map them."""
    assert x.dtype == torch.float32 and x.shape in ((echonet.BATCH, c, echonet.LENGTH, 112, 112) for c in (1, 3))
    assert torch.isfinite(x.reshape(-1)[::1024]).all()


class EchoNetSide:
    def __init__(self, paths: list[Path]):
        self.files = paths
        data = echonet.Echo(paths, np.zeros(len(paths)), np.multiply(MEAN, 255), np.multiply(STD, 255),
                            pad=echonet.PAD)
        self.data = ConcatDataset([data] * PASSES)

    def epoch(self, workers: int) -> int:
        n = 0
        for x, _ in echonet.loader(self.data, True, CPU, workers):
            check(x)
            n += len(x)
        return n


class CineflowSide:
    def __init__(self, rows: pd.DataFrame):
        self.files = sorted({Path(p) for p in rows["frames_path"]})
        self.clips = ClipDataset(rows, np.zeros(len(rows), np.int64), ClipSpec("random", echonet.LENGTH,
                                                                                 echonet.PERIOD))
        channels = int(rows["channels"].iloc[0])
        self.prepare = Prepare(MEAN[:channels], STD[:channels],
                               augmentations({"shift": {"p": 1.0, "pixels": echonet.PAD}}), seed=0)
        self.n, self.buffers = 0, EpochBuffers()  # kept from epoch to epoch, as the trainer keeps them

    def epoch(self, workers: int) -> int:
        self.n += 1
        self.clips.set_epoch(self.n)
        batches = [b for r in range(PASSES) for b in epoch_batches("shuffle", np.zeros(len(self.clips), int),
                                                                   echonet.BATCH, 0, self.n * PASSES + r)]
        n = 0
        loader = training_loader(self.clips, batches, workers, CPU, buffers=self.buffers)
        for x, _ in ready_batches(loader, self.prepare, CPU, self.n, self.buffers):
            check(x)
            n += len(x)
        return n


def timed_epoch(side, workers: int, cold: bool) -> tuple[float, float]:
    """(clips per second, MB read from the disk) of one epoch."""
    if cold:
        evict(side.files)
    before = psutil.disk_io_counters()
    tic = time.perf_counter()
    clips = side.epoch(workers)
    seconds = time.perf_counter() - tic
    after = psutil.disk_io_counters()
    read_mb = (after.read_bytes - before.read_bytes) / 2**20 if before and after else -1.0
    return clips / seconds, read_mb


def main() -> None:
    torch.set_num_threads(1)
    cores = os.cpu_count() or 1
    worker_counts = [0, 2, 4] + ([8] if cores >= 16 else [])
    work = Path(tempfile.mkdtemp(prefix="cineflow_bench_loader_"))
    paths = make_videos(work / "videos", n_videos=N_VIDEOS, n_frames=N_FRAMES)
    caches = {}
    for color in ("rgb", "grey"):
        cfg = CacheConfig.from_dict(resolve({"cache": {"size": 112, "color": color}})["cache"])
        caches[color] = pd.DataFrame([cache_video(p, work / color / f"{p.stem}.npy", cfg) for p in paths])
    rows = caches["rgb"]
    shards = CacheConfig.from_dict(resolve({"cache": {"size": 112, "color": "rgb", "store": "shards"}})["cache"])
    videos = pd.DataFrame({"video_id": [p.stem for p in paths], "path": [p.name for p in paths]})
    in_shards = pd.concat([cache_shard(videos.iloc[k::4], paths[0].parent, work / "shards" / str(k), shards)
                           for k in range(4)], ignore_index=True)
    sides = {"echonet": EchoNetSide(paths), "cineflow": CineflowSide(rows),
             "cineflow_shards": CineflowSide(in_shards),
             "cineflow_grey": CineflowSide(caches["grey"])}
    rates: dict[tuple, list[float]] = {}
    disk: dict[tuple, list[float]] = {}
    for workers in worker_counts:  # warm-up: worker start-up paths, page cache
        for side in sides.values():
            timed_epoch(side, workers, cold=False)
    for _ in range(ROUNDS):
        for temperature in ("warm", "cold"):
            for workers in worker_counts:
                for name, side in sides.items():
                    rate, read_mb = timed_epoch(side, workers, cold=temperature == "cold")
                    rates.setdefault((name, temperature, workers), []).append(rate)
                    disk.setdefault((name, temperature, workers), []).append(read_mb)
    figures: dict = {}
    for temperature in ("warm", "cold"):
        for workers in worker_counts:
            key = f"{temperature}_w{workers}"
            ratios = np.divide(rates[("cineflow", temperature, workers)], rates[("echonet", temperature, workers)])
            figures[f"speedup_{key}"] = round(float(np.median(ratios)), 2)
            figures[f"speedup_spread_{key}"] = round(float(ratios.max() / ratios.min() - 1), 3)
            grey = np.divide(rates[("cineflow_grey", temperature, workers)], rates[("echonet", temperature, workers)])
            figures[f"grey_speedup_{key}"] = round(float(np.median(grey)), 2)
            shard = np.divide(rates[("cineflow_shards", temperature, workers)],
                              rates[("cineflow", temperature, workers)])
            figures[f"shards_vs_files_{key}"] = round(float(np.median(shard)), 3)
            own = np.divide(rates[("cineflow", temperature, workers)], rates[("cineflow", temperature, 0)])
            figures[f"vs_own_w0_{key}"] = round(float(np.median(own)), 2)  # >= 1: workers never slow it down
            for name in sides:
                figures[f"{name}_clips_per_s_{key}"] = round(float(np.median(rates[(name, temperature, workers)])), 1)
                figures[f"{name}_disk_read_mb_{key}"] = round(float(np.median(disk[(name, temperature, workers)])), 1)
    save("loader", {
        **figures,
        "cache_mb": round(sum(Path(p).stat().st_size for p in rows["frames_path"]) / 2**20, 1),
        "grey_cache_mb": round(sum(Path(p).stat().st_size for p in caches["grey"]["frames_path"]) / 2**20, 1),
        "avi_mb": round(sum(p.stat().st_size for p in paths) / 2**20, 1),
        "n_videos": N_VIDEOS, "frames_per_video": N_FRAMES, "clips_per_epoch": N_VIDEOS * PASSES,
        "clip_length": echonet.LENGTH, "clip_period": echonet.PERIOD, "batch_size": echonet.BATCH,
        "size": 112, "channels": 3, "pad_pixels": echonet.PAD, "rounds": ROUNDS, "cpu_cores": cores,
        "main_process_torch_threads": 1,
    })


if __name__ == "__main__":
    main()
