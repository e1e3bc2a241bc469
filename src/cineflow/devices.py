"""Which GPU a job runs on. Snakemake's `--resources gpu=N` bounds how many GPU jobs run at once but
assigns no device, so concurrent jobs would all land on cuda:0. Each job claims a GPU by holding an
exclusive lock on that GPU's lock file for as long as it runs; the kernel drops the lock when the
process ends, killed or not, so a crashed job never leaves a GPU claimed.

Under a scheduler that hands the job its own GPUs (SLURM sets CUDA_VISIBLE_DEVICES per job), the
job uses the first GPU it sees and claims nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

import torch

DEFAULT_LOCK_DIR = Path(tempfile.gettempdir()) / f"cineflow-gpu-slots-{os.getuid()}"


def gpu_names(env: dict | None = None, count: int | None = None) -> list[str]:
    """Physical ids of the visible GPUs (CUDA_VISIBLE_DEVICES order), so workflows that see the same
    GPU under different indices still share its lock."""
    env = os.environ if env is None else env
    count = torch.cuda.device_count() if count is None else count
    visible = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[:count] if visible else [str(i) for i in range(count)]


def scheduler_assigned(env: dict | None = None) -> bool:
    env = os.environ if env is None else env
    return "SLURM_JOB_ID" in env and "CUDA_VISIBLE_DEVICES" in env


@contextlib.contextmanager
def claim_slot(names: list[str], lock_dir: str | Path = DEFAULT_LOCK_DIR, poll_s: float = 0.5,
               timeout_s: float | None = None) -> Iterator[int]:
    """Index of the first slot whose lock is free, held until the block ends; waits while all are taken."""
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        for index, name in enumerate(names):
            handle = open(lock_dir / f"gpu-{name}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(f"{os.getpid()}\n")
                handle.flush()
                yield index
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"all {len(names)} GPU slots in {lock_dir} stayed taken for {timeout_s} s")
        time.sleep(poll_s)


@contextlib.contextmanager
def job_device(lock_dir: str | Path = DEFAULT_LOCK_DIR) -> Iterator[torch.device]:
    """The device for one job: a GPU of its own when there are GPUs, else the CPU."""
    if not torch.cuda.is_available():
        yield torch.device("cpu")
        return
    if scheduler_assigned():
        yield torch.device("cuda:0")
        return
    with claim_slot(gpu_names(), lock_dir) as index:
        torch.cuda.set_device(index)
        yield torch.device(f"cuda:{index}")
