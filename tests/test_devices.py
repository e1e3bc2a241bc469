"""GPU slots for concurrent jobs, exercised without a GPU: lock files over named slots."""

import subprocess
import sys
import time

import pytest
import torch

from cineflow.devices import claim_slot, gpu_names, job_device, scheduler_assigned


def test_concurrent_jobs_get_distinct_slots_and_a_released_slot_is_reused(tmp_path):
    names = ["0", "1"]
    with claim_slot(names, tmp_path) as first, claim_slot(names, tmp_path) as second:
        assert {first, second} == {0, 1}
        with pytest.raises(TimeoutError, match="all 2 GPU slots"):
            with claim_slot(names, tmp_path, poll_s=0.05, timeout_s=0.2):
                pass
    with claim_slot(names, tmp_path) as again:
        assert again == 0


def test_a_killed_job_frees_its_slot(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time, sys; from cineflow.devices import claim_slot\n"
        f"with claim_slot(['0'], {str(tmp_path)!r}) as i:\n"
        "    print(i, flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "0"
    with pytest.raises(TimeoutError):
        with claim_slot(["0"], tmp_path, poll_s=0.05, timeout_s=0.2):
            pass
    holder.kill()
    holder.wait()
    tic = time.monotonic()
    with claim_slot(["0"], tmp_path, poll_s=0.05, timeout_s=5) as index:
        assert index == 0 and time.monotonic() - tic < 5


def test_visible_devices_name_the_slots_and_slurm_assigns_its_own():
    assert gpu_names({}, count=2) == ["0", "1"]
    assert gpu_names({"CUDA_VISIBLE_DEVICES": "2,3"}, count=2) == ["2", "3"]  # physical ids: shared locks
    assert gpu_names({}, count=0) == []
    assert scheduler_assigned({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "1"})
    assert not scheduler_assigned({"CUDA_VISIBLE_DEVICES": "1"}) and not scheduler_assigned({"SLURM_JOB_ID": "7"})


def test_a_job_without_gpus_runs_on_the_cpu(tmp_path):
    with job_device(tmp_path) as device:
        assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
