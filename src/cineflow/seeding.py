"""Seeds and determinism in one call, so every entry point is reproducible the same way."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from cineflow.config import schema_default


def seed_everything(seed: int, threads: int | None = None, deterministic: bool | str | None = None) -> None:
    """Seed Python/NumPy/torch and choose how deterministic the kernels are (the device comes from
    devices.job_device).

    On a CPU every kernel cineflow uses is deterministic. On a GPU a few have no deterministic CUDA
    version, among them the backward of 3D adaptive average pooling (every 3D CNN's global pool) and of
    trilinear interpolation, which add up gradients with atomics in whatever order threads finish: the
    weights then differ between runs in the last bits, and the difference can grow over epochs.

    Args:
        seed: seeds Python, NumPy and torch (CPU and every CUDA device).
        threads: torch's CPU threads (None: torch's default).
        deterministic: the config's `deterministic`. True: deterministic kernels, and an error naming the op
            where a CUDA kernel has none (exact reruns, or a clear refusal). "warn": deterministic kernels where
            they exist, a warning elsewhere (runs on a GPU agree up to rounding). False: cuDNN may autotune and
            pick the fastest kernels (fastest, reruns on a GPU differ). None: the schema's default.
    """
    if deterministic is None:
        deterministic = schema_default("deterministic")
    # cuBLAS is deterministic only with a fixed workspace, set before its first call (no effect on a CPU)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also every CUDA device's generator
    torch.use_deterministic_algorithms(bool(deterministic), warn_only=deterministic == "warn")
    torch.backends.cudnn.benchmark = deterministic is False
    if threads:
        torch.set_num_threads(threads)
