"""GPU figures: cineflow's training loop against EchoNet-Dynamic's at equal precision, GPU utilisation,
evaluation with all-clips TTA, Grad-CAM, and the VideoMAE-base training step.

R(2+1)D-18 at EchoNet size (32 frames with period 2, 112 x 112 RGB, batch 20), EF regression, on the
same AVIs: EchoNet-Dynamic's loop (bench/echonet_reference.py: decode every AVI each epoch, float32,
in-place normalisation, pad-12 crop, `loss.item()` each step) reads the AVIs; cineflow's
(`trainer.train_one_epoch` with `training_loader`) reads the uint8 frame cache built from them, with the
same ±12-pixel shift done on the GPU (`augment.shift`). Both sides get the same worker count:
EchoNet's default 4, and 12 of the machine's cores. Each epoch's time includes starting its workers,
as in both programs. Each configuration is warmed up by one epoch, then timed in interleaved rounds;
figures are medians over the rounds, with the spread (max/min - 1) beside them.

cineflow is timed as the workflow runs it: deterministic kernels (seeding.seed_everything). The
`_benchmark_kernels` figures let cuDNN pick its fastest, possibly non-deterministic, algorithms, as
EchoNet-Dynamic's default does, to show what determinism costs.

On a machine without CUDA this prints why and writes nothing (the committed gpu.json stays).
`--quick` runs every part at a few steps on whatever device there is (fp32 only), to check the script.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from multiprocessing import Pool
from pathlib import Path

import echonet_reference as echonet
import numpy as np
import pandas as pd
import torch
from echonet_like import make_videos, save

from cineflow.config import CacheConfig, ModelConfig, model_stages, resolve
from cineflow.data.augment import augmentations
from cineflow.data.cache import cache_video
from cineflow.data.clips import ClipDataset, Prepare, read_clip, to_tensor
from cineflow.data.sampling import ClipSpec, eval_clips
from cineflow.data.video_io import write_mp4
from cineflow.models.architectures import build_model, init_output_bias
from cineflow.models.cam import clip_cam, overlay
from cineflow.models.inference import score_videos
from cineflow.models.losses import build_loss
from cineflow.seeding import seed_everything
from cineflow.train.batching import epoch_batches
from cineflow.train.loop import train_one_epoch, training_loader
from cineflow.train.optim import build_optimizer
from cineflow.train.precision import Precision

MEAN, STD = [0.2] * 3, [0.2] * 3  # [0, 1] units; EchoNet's side gets the same x 255
PRECISIONS = {"fp32": None, "amp": torch.bfloat16}


def r2plus1d_config(amp: str) -> ModelConfig:
    """EchoNet-Dynamic's recipe as a cineflow model section."""
    section = {"arch": "r2plus1d_18", "task": "regression", "target": "ef", "loss": "mse", "clip_length": 32,
               "clip_period": 2, "batch_size": echonet.BATCH, "lr": 1e-4, "weight_decay": 1e-4,
               "optimizer": "momentum", "optimizer_params": {"momentum": 0.9}, "amp": amp,
               "augment": {"shift": {"p": 1.0, "pixels": echonet.PAD}}}
    return ModelConfig.from_dict(resolve({"models": {"m": section}})["models"]["m"])


class CineflowLoop:
    """What train_fold sets up for one model, then one `train_one_epoch` per call."""

    def __init__(self, rows: pd.DataFrame, device: torch.device, amp: str):
        self.cfg, self.device, self.rows = r2plus1d_config(amp), device, rows
        self.targets = rows["ef"].to_numpy(np.float32)
        torch.manual_seed(0)
        self.model = build_model("r2plus1d_18", 1, 3, input_size=(32, 112, 112)).to(device)
        init_output_bias(self.model, float(self.targets.mean()))
        self.criterion = build_loss("mse", 1, self.targets).to(device)
        self.optimizer = build_optimizer(self.model, model_stages(self.cfg, "loss")[0])
        self.precision = Precision(amp, device)
        self.dataset = ClipDataset(rows, self.targets, ClipSpec.of(self.cfg), seed=0)
        self.epoch = 0

    def run(self, workers: int, repeat: int) -> int:
        """One epoch over `repeat` shuffled passes of the videos; returns the clips trained on."""
        self.model.train()
        self.dataset.set_epoch(self.epoch)
        batches = [b for r in range(repeat) for b in epoch_batches("shuffle", np.zeros(len(self.rows), int),
                                                                   self.cfg.batch_size, 0, self.epoch * 100 + r)]
        prepare = Prepare(MEAN, STD, augmentations(self.cfg.augment), 0)
        train_one_epoch(self.model, training_loader(self.dataset, batches, workers, self.device),
                        self.criterion, self.optimizer, self.precision, self.device, prepare, self.epoch)
        self.epoch += 1
        return sum(len(b) for b in batches)


class EchoNetLoop:
    """EchoNet-Dynamic's run(): model, SGD and a fresh DataLoader per epoch over the AVIs."""

    def __init__(self, paths: list[Path], targets: np.ndarray, device: torch.device, amp: torch.dtype | None):
        torch.manual_seed(0)
        self.model, self.optimizer = echonet.model_and_optimizer(device)
        self.device, self.amp = device, amp
        self.scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
        self.dataset = echonet.Echo(paths, targets, np.multiply(MEAN, 255), np.multiply(STD, 255), pad=echonet.PAD)

    def run(self, workers: int, repeat: int) -> int:
        data = torch.utils.data.ConcatDataset([self.dataset] * repeat)
        dataloader = echonet.loader(data, True, self.device, workers)
        return echonet.run_epoch(self.model, dataloader, True, self.optimizer, self.device, amp=self.amp,
                                 scaler=self.scaler)[1]


@contextlib.contextmanager
def kernels(deterministic: bool):
    """Deterministic kernels (cineflow's workflow) or cuDNN's autotuned choice (PyTorch's default + benchmark)."""
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


class Utilisation:
    """GPU utilisation (NVML, % of time a kernel ran) sampled every 50 ms while the block runs."""

    def __enter__(self):
        self.samples, self.running = [], True
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            self.read = lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
        except Exception as err:  # no NVML (a CPU run): no samples
            print(f"no GPU utilisation: {err}", file=sys.stderr)
            self.read = None
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running and self.read is not None:
            self.samples.append(self.read())
            time.sleep(0.05)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()

    @property
    def percent(self) -> float:
        # NVML averages over its own sample period (up to 1 s): skip the first second (workers starting)
        kept = self.samples[20:] or self.samples
        return float(np.mean(kept)) if kept else -1.0


def timed(loop, workers: int, repeat: int, device: torch.device) -> float:
    """Clips per second of one epoch, synchronised at both ends."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    tic = time.perf_counter()
    clips = loop.run(workers, repeat)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return clips / (time.perf_counter() - tic)


def spread(values: list[float]) -> float:
    return round(max(values) / min(values) - 1, 3)


def make_data(work: Path, n_videos: int, n_frames: int) -> tuple[list[Path], pd.DataFrame]:
    """EchoNet-size AVIs (made in parallel) and cineflow's RGB cache of them."""
    chunks = [(work / "videos", k, n_videos, n_frames) for k in range(0, n_videos, 16)]
    with Pool(min(16, os.cpu_count() or 1)) as pool:
        paths = [p for chunk in pool.starmap(_videos, chunks) for p in chunk]
        cfg = CacheConfig.from_dict(resolve({"cache": {"size": 112, "color": "rgb"}})["cache"])
        rows = pool.starmap(cache_video, [(p, work / "cache" / f"{p.stem}.npy", cfg) for p in paths])
    rows = pd.DataFrame(rows).assign(video_id=[p.stem for p in paths])
    rows["ef"] = np.random.default_rng(0).uniform(20, 75, len(rows)).astype(np.float32)
    assert (rows["status"] == "ok").all(), rows.loc[rows["status"] != "ok", "reason"]
    return paths, rows


def _videos(folder: Path, start: int, n_videos: int, n_frames: int) -> list[Path]:
    return make_videos(folder, n_videos=n_videos, n_frames=n_frames, seed=0, only=slice(start, start + 16))


def training(figures: dict, paths, rows, device, worker_counts, rounds: int, repeat: int,
             precisions: dict = PRECISIONS) -> None:
    """Clips/s of both loops at each precision and worker count, and GPU utilisation of cineflow's."""
    targets = rows["ef"].to_numpy(np.float32)
    for precision, amp in precisions.items():
        amp_name = "bf16" if amp is not None else "off"
        loops = {"echonet": (EchoNetLoop(paths, targets, device, amp), False),
                 "cineflow": (CineflowLoop(rows, device, amp_name), True),
                 "cineflow_benchmark_kernels": (CineflowLoop(rows, device, amp_name), False)}
        for workers in worker_counts:
            rates: dict[str, list[float]] = {name: [] for name in loops}
            for name, (loop, deterministic) in loops.items():  # warm-up: cuDNN plans, workers, page cache
                with kernels(deterministic):
                    timed(loop, workers, 1, device)
            for _ in range(rounds):
                for name, (loop, deterministic) in loops.items():
                    with kernels(deterministic):
                        rates[name].append(timed(loop, workers, repeat, device))
            for name, values in rates.items():
                figures[f"{name}_clips_per_s_{precision}_w{workers}"] = round(float(np.median(values)), 1)
                figures[f"{name}_spread_{precision}_w{workers}"] = spread(values)
            for name in ("cineflow", "cineflow_benchmark_kernels"):
                ratios = np.divide(rates[name], rates["echonet"])
                suffix = "" if name == "cineflow" else "_benchmark_kernels"
                figures[f"train_speedup{suffix}_{precision}_w{workers}"] = round(float(np.median(ratios)), 2)
            print({k: v for k, v in figures.items() if f"_{precision}_w{workers}" in k}, flush=True)
        # utilisation during a longer epoch of cineflow's loop with the most workers
        workers = max(worker_counts)
        for name in ("cineflow", "echonet"):
            loop, deterministic = loops[name]
            with kernels(deterministic), Utilisation() as util:
                timed(loop, workers, 3 * repeat, device)
            figures[f"{name}_gpu_util_percent_{precision}_w{workers}"] = round(util.percent, 1)
        del loops
        torch.cuda.empty_cache() if device.type == "cuda" else None


def evaluation(figures: dict, paths, rows, device, n_videos: int) -> None:
    """All-clips TTA, seconds per video: cineflow's score_videos (block 20) and EchoNet's run_epoch."""
    model = build_model("r2plus1d_18", 1, 3, input_size=(32, 112, 112)).to(device)
    spec = ClipSpec("random", 32, 2)
    subset = rows.iloc[:n_videos]
    clips = sum(len(eval_clips(int(n), spec, "all")) for n in subset["n_frames"])
    ours, theirs = [], []
    reference, _ = echonet.model_and_optimizer(device)
    dataset = echonet.Echo(paths[:n_videos], subset["ef"], np.multiply(MEAN, 255), np.multiply(STD, 255), clips="all")
    for k in range(3):  # round 0 is the warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        tic = time.perf_counter()
        score_videos(model, subset, MEAN, STD, spec, "all", device, block=echonet.BATCH, output="identity")
        ours.append(time.perf_counter() - tic)
        tic = time.perf_counter()
        echonet.run_epoch(reference, torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=echonet.WORKERS,
                                                                 pin_memory=device.type == "cuda"),
                          False, None, device, block_size=echonet.BATCH)
        theirs.append(time.perf_counter() - tic)
    figures.update({
        "eval_all_clips_s_per_video": round(float(np.median(ours[1:])) / n_videos, 4),
        "eval_all_clips_clips_per_s": round(clips / float(np.median(ours[1:])), 1),
        "echonet_eval_all_clips_s_per_video": round(float(np.median(theirs[1:])) / n_videos, 4),
        "eval_speedup_vs_echonet": round(float(np.median(np.divide(theirs[1:], ours[1:]))), 2),
        "eval_videos": n_videos, "eval_clips_per_video": round(clips / n_videos, 1),
    })


def gradcam(figures: dict, rows, device, work: Path, n_videos: int) -> None:
    """Grad-CAM of one clip plus its side-by-side H.264 MP4, seconds per video (the gradcam rule's work)."""
    model = build_model("r2plus1d_18", 1, 3, input_size=(32, 112, 112)).to(device).eval()
    spec, times = ClipSpec("random", 32, 2), []
    for k, row in enumerate(rows.iloc[:n_videos + 1].itertuples()):  # the first is the warm-up
        tic = time.perf_counter()
        raw = read_clip(np.load(row.frames_path, mmap_mode="r"), eval_clips(int(row.n_frames), spec, 1)[0])
        heat = clip_cam(model, to_tensor(raw, MEAN, STD).to(device), 0, model.cam_layer)
        write_mp4(work / f"cam_{k}.mp4", overlay(raw, heat, "EF 55 | pred 52"), 25)
        times.append(time.perf_counter() - tic)
    figures["gradcam_s_per_video"] = round(float(np.median(times[1:])), 4)
    figures["gradcam_spread"] = spread(times[1:])


def videomae(figures: dict, device, work: Path, steps: int, batch: int) -> None:
    """VideoMAE-base (ViT-B, 16 x 224², tubelet 2, patch 16) training steps with bf16 and fp16 autocast."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(batch):
        path = work / f"vmae_{i}.npy"
        np.save(path, rng.integers(0, 255, (16, 224, 224, 3), dtype=np.uint8))
        paths.append(str(path))
    rows = pd.DataFrame({"frames_path": paths, "n_frames": 16})
    dataset = ClipDataset(rows, np.zeros(batch, np.int64), ClipSpec("random", 16, 1))
    for amp in ("bf16", "fp16"):
        torch.manual_seed(0)
        model = build_model("videomae", 2, 3, input_size=(16, 224, 224)).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        precision, criterion = Precision(amp, device), torch.nn.CrossEntropyLoss()
        prepare = Prepare(MEAN, STD, augmentations({}), 0)
        loader = [next(iter(training_loader(dataset, [list(range(batch))], 0, device)))] * steps
        run = lambda n: train_one_epoch(model, loader[:n], criterion, optimizer, precision, device,  # noqa: E731
                                        prepare, 0)
        run(2)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        tic = time.perf_counter()
        run(steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - tic) / steps
        figures[f"videomae_base_{amp}_clips_per_s"] = round(batch / seconds, 2)
        figures[f"videomae_base_{amp}_s_per_step"] = round(seconds, 4)
        if device.type == "cuda":
            figures[f"videomae_base_{amp}_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        figures["videomae_attention"] = model.backbone.config._attn_implementation
        del model, optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps of everything, any device")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.quick:
        print("gpu.py: no CUDA device on this machine: the GPU benchmarks are skipped "
              "(bench/results/gpu.json keeps the figures of the last GPU run)")
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    seed_everything(0, threads=min(4, os.cpu_count() or 1))
    quick = args.quick
    n_videos, n_frames = (8, 72) if quick else (240, 176)
    worker_counts = [2] if quick else [4, 12]
    work = Path(tempfile.mkdtemp(prefix="cineflow_bench_gpu_"))
    tic = time.perf_counter()
    paths, rows = make_data(work, n_videos, n_frames)
    figures = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "cpu_cores": os.cpu_count(), "torch": torch.__version__,
               "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
               "n_videos": n_videos, "frames_per_video": n_frames, "batch_size": echonet.BATCH,
               "clip": "32 frames, period 2, 112 x 112 RGB", "amp": "bf16 autocast on both sides",
               "rounds": 1 if quick else 3, "data_seconds": round(time.perf_counter() - tic, 1)}
    print(figures, flush=True)
    if quick:
        echonet.BATCH = 4
    training(figures, paths, rows, device, worker_counts, rounds=figures["rounds"], repeat=1 if quick else 2,
             precisions={"fp32": None} if quick else PRECISIONS)
    evaluation(figures, paths, rows, device, n_videos=2 if quick else 8)
    gradcam(figures, rows, device, work, n_videos=2 if quick else 5)
    videomae(figures, device, work, steps=2 if quick else 10, batch=2 if quick else 8)
    w = max(worker_counts)
    figures.update({  # the headline names
        "train_speedup_fp32": figures[f"train_speedup_fp32_w{echonet.WORKERS if not quick else w}"],
        "train_speedup_amp": figures.get(f"train_speedup_amp_w{echonet.WORKERS if not quick else w}"),
        "gpu_util_percent": figures.get(f"cineflow_gpu_util_percent_amp_w{w}"),
    })
    if quick:
        print(figures)
        return
    save("gpu", figures)


if __name__ == "__main__":
    main()
