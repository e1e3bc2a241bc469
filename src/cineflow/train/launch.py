"""One fold's training as a job description (`FoldJob`) and the one path that runs it (`run_job`): in the train
rule's own process, or in each of N processes that `launch` starts under torchrun, each of which (`main`) joins
the process group, takes its rank's device and trains its share (train.fold). Trackers open on rank 0 only.

`python -m cineflow.train.launch <job.json>` is one such process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as tdist

from cineflow.config import ModelConfig, TrackingConfig
from cineflow.io import read_csv, read_json, read_parquet, write_json
from cineflow.seeding import seed_everything
from cineflow.tracking import TRACKING_DIR, open_trackers
from cineflow.train import distributed
from cineflow.train.fold import FoldPaths, train_fold


@dataclass(frozen=True)
class FoldJob:
    """Everything one fold's training needs, as JSON-able values: what the train rule hands over.

    Attributes:
        model: the model's config entry (ModelConfig as a dict).
        classes: data.classes.
        split: the fold's split CSV.
        manifest: the manifest Parquet.
        paths: FoldPaths as a dict.
        seed: the run's seed.
        workers: resources.loader_workers.
        threads: resources.train_threads (torch's intra-op threads).
        deterministic: the top-level `deterministic` setting.
        norm: the fold's normalisation statistics, or None (models.<name>.normalise is not fold).
        provenance: the block the checkpoints carry.
        tracking: the tracking section, or None for no trackers.
        tracking_dir: where the trackers' stores live.
        run: the trackers' run name (tracking.run_name).
    """

    model: dict
    classes: list
    split: str
    manifest: str
    paths: dict
    seed: int
    workers: int | str
    threads: int | None
    deterministic: str
    norm: dict | None = None
    provenance: dict = field(default_factory=dict)
    tracking: dict | None = None
    tracking_dir: str = TRACKING_DIR
    run: str = ""


def run_job(job: FoldJob, device: torch.device):
    """Train the fold of `job` in this process (alone, or as one rank of a torchrun group); returns its history.
    Only the first process opens the trackers, and it logs the checkpoint and history to them at the end."""
    main = distributed.group().main
    tracking = TrackingConfig.from_dict(job.tracking) if job.tracking and main else None
    paths = FoldPaths(**job.paths)
    with open_trackers(tracking, job.tracking_dir, job.run) as trackers:
        seed_everything(job.seed, job.threads, job.deterministic)
        history = train_fold(ModelConfig.from_dict(job.model), job.classes, read_csv(job.split),
                             read_parquet(job.manifest), job.norm, paths, job.seed, device, job.provenance, trackers,
                             job.workers)
        for tracker in trackers:
            tracker.log_artifacts([paths.model, paths.history], "checkpoint")
    return history


def launch(job: FoldJob, n_procs: int, job_path: str | Path) -> None:
    """Run `job` in `n_procs` processes under torchrun and wait for them.

    The job is written to `job_path` as JSON for the processes; a failed process fails the job with torchrun's
    exit status."""
    write_json(job_path, asdict(job))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_procs}",
               "-m", "cineflow.train.launch", str(job_path)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                       os.environ.get("PYTHONPATH", "")]))
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    done = subprocess.run(command, env=env, stdout=_file(sys.stdout), stderr=_file(sys.stderr))
    if done.returncode:
        raise RuntimeError(f"distributed training ({n_procs} processes) failed with exit status {done.returncode}; "
                           "each process's output is above")


def _file(stream):
    """`stream` when it is a real file (a rule's log: the processes write there too), else inherit."""
    try:
        stream.fileno()
        return stream
    except (AttributeError, OSError, ValueError):
        return None


def main(job_path: str) -> None:
    """One torchrun process: join the group, take this rank's device, train."""
    job = FoldJob(**read_json(job_path))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local_rank)
    tdist.init_process_group("nccl" if cuda else "gloo")
    try:
        run_job(job, torch.device(f"cuda:{local_rank}" if cuda else "cpu"))
        # every rank finished before any leaves: a rank tearing down gloo while the first still writes the
        # fold's files aborted the other ("terminate called without an active exception") now and then
        tdist.barrier()
    finally:
        tdist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
