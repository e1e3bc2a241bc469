"""Seeds and determinism in one call, so every entry point is reproducible the same way."""

from __future__ import annotations

import os
import random
import sys

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
    set_deterministic(bool(deterministic), warn_only=deterministic == "warn")
    torch.backends.cudnn.benchmark = deterministic is False
    if threads:
        torch.set_num_threads(threads)


def set_deterministic(mode: bool, warn_only: bool) -> None:
    """torch.use_deterministic_algorithms, without importing the inductor compiler where it is not loaded yet.

    torch's call imports torch._inductor only to copy the flag into inductor's config: 3.7 s on this machine,
    in every job that seeds (train, evaluate, Grad-CAM, shift references, external sets), more than a demo fold's
    training takes. Until a model is compiled (`compile_determinism`), the switch torch itself flips is enough.
    """
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


def compile_determinism() -> None:
    """Carry the deterministic switch into inductor's config before torch.compile (models.<name>.compile)."""
    torch.use_deterministic_algorithms(torch.are_deterministic_algorithms_enabled(),
                                       warn_only=torch.is_deterministic_algorithms_warn_only_enabled())
