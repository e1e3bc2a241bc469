"""One fold on several processes: `launch` runs N copies of this module under torchrun; each
(`main`) joins the process group, takes its rank's device and trains its share (train.fold).

`python -m cineflow.train.launch <job.json>` is one such process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as tdist

from cineflow.config import ModelConfig
from cineflow.io import read_csv, read_json, read_parquet, write_json
from cineflow.seeding import seed_everything
from cineflow.train.fold import FoldPaths, train_fold


def launch(job: dict, n_procs: int, job_path: str | Path) -> None:
    """Run trainer.train_fold(**job) in `n_procs` processes under torchrun and wait for them.

    `job` holds the arguments as JSON (paths, the model config as a dict, the normalisation); a failed
    process fails the job with torchrun's exit status."""
    write_json(job_path, job)
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
    job = read_json(job_path)
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local_rank)
    tdist.init_process_group("nccl" if cuda else "gloo")
    try:
        seed_everything(job["seed"], job.pop("threads", None), job.pop("deterministic", "warn"))
        device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
        train_fold(ModelConfig.from_dict(job.pop("model")), job.pop("classes"), read_csv(job.pop("split")),
                   read_parquet(job.pop("manifest")), paths=FoldPaths(**job.pop("paths")), device=device, **job)
        # every rank finished before any leaves: a rank tearing down gloo while the first still writes the
        # fold's files aborted the other ("terminate called without an active exception") now and then
        tdist.barrier()
    finally:
        tdist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
