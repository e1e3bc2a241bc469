"""Seeds and determinism in one call, so every entry point is reproducible the same way."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed Python/NumPy/torch and make kernels deterministic (the device comes from devices.job_device)."""
    # cuBLAS is deterministic only with a fixed workspace, set before its first call (no effect on a CPU)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)
