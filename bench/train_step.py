"""Training-step throughput (clips/s, forward + backward + optimizer step) per architecture family.

Two sizes: the demo's (16 frames of 48 x 48 grey, batch 8) and EchoNet's (32 frames of 112 x 112 RGB,
batch 2 on a CPU, 8 on a GPU), each through cineflow's training step (uint8 clips from the cache, float conversion and
normalisation on the device, autocast when on CUDA). A family whose first step takes longer than
STEP_LIMIT_S at a size is recorded as skipped (-1) there: the machine does not allow it. The first step is
the warm-up; each figure is the median of 3 interleaved rounds of 3 steps (its `_spread` beside it).

cineflow's loop against EchoNet-Dynamic's own is bench/gpu.py's (on a GPU, where it matters).
"""

from __future__ import annotations

import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from echonet_like import interleaved, median_spread, save
from torch.utils.data import DataLoader

from cineflow.data.clips import ClipDataset, normalise
from cineflow.data.sampling import ClipSpec
from cineflow.models.architectures import build_model
from cineflow.train.precision import Precision

FAMILIES = {
    "tiny3d": ("tiny3d", {}),
    "frame2d_resnet18_bilstm_attention": ("frame2d", {"backbone": "resnet18", "temporal_head": "bilstm_attention"}),
    "image2d_convnextv2_atto": ("image2d", {"backbone": "convnextv2_atto"}),
    "r2plus1d_18": ("r2plus1d_18", {}),
    "r3d_18": ("r3d_18", {}),
    "mc3_18": ("mc3_18", {}),
    "videomae_small": ("videomae", {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
                                    "intermediate_size": 1536}),
}
GPU = torch.cuda.is_available()
SIZES = {"demo": (16, 48, 1, 8), "echonet": (32, 112, 3, 8 if GPU else 2)}  # frames, pixels, channels, batch
STEP_LIMIT_S = 60.0
TIMED_STEPS = 3  # steps per round
ROUNDS = 3


def cache(folder: Path, n: int, frames: int, size: int, channels: int) -> pd.DataFrame:
    """uint8 [T, H, W, C] frame files as the cache stage writes them."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        path = folder / f"v{i}.npy"
        np.save(path, rng.integers(0, 255, (frames * 2, size, size, channels), dtype=np.uint8))
        rows.append({"frames_path": str(path), "n_frames": frames * 2})
    return pd.DataFrame(rows)


def cineflow_steps(model, batches: list, device, optimizer, precision) -> float:
    """Seconds per step of cineflow's training step over `batches` (uint8 clips from the cache)."""
    model.train()
    tic = time.perf_counter()
    for x, y in batches:
        x = normalise(x.to(device).float().div_(255.0), [0.2] * x.shape[1], [0.2] * x.shape[1])
        with precision.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y.to(device))
        precision.backward(loss)
        precision.step(optimizer, model.parameters(), None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - tic) / len(batches)


def main() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    work = Path(tempfile.mkdtemp(prefix="cineflow_bench_train_"))
    figures = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "threads": torch.get_num_threads(), "timed_steps": TIMED_STEPS, "rounds": ROUNDS}
    for size_name, (frames, pixels, channels, batch) in SIZES.items():
        folder = work / size_name
        folder.mkdir()
        rows = cache(folder, batch * TIMED_STEPS, frames, pixels, channels)
        tasks = {}
        for family, (arch, params) in FAMILIES.items():
            length = 1 if arch == "image2d" else frames
            dataset = ClipDataset(rows, np.zeros(len(rows), np.int64), ClipSpec("random", length, 1))
            batches = list(DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=0))
            torch.manual_seed(0)
            model = build_model(arch, 2, channels, input_size=(length, pixels, pixels), **params).to(device)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            first = cineflow_steps(model, batches[:1], device, optimizer, Precision("auto", device))
            if first > STEP_LIMIT_S:
                figures[f"{family}_{size_name}_clips_per_s"] = -1.0
                print(f"{family} at {size_name} size: skipped, a step takes {first:.0f} s", flush=True)
                continue
            tasks[f"{family}_{size_name}"] = partial(cineflow_steps, model, batches, device, optimizer,
                                                     Precision("auto", device))
        for key, seconds in interleaved(tasks, ROUNDS).items():  # clips/s: batch / seconds per step
            rates = median_spread(f"{key}_clips_per_s", [batch / s for s in seconds], 2)
            figures.update(rates)
            print(f"{key}: {rates}", flush=True)
    save("train_step", figures)


if __name__ == "__main__":
    main()
