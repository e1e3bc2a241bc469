"""The workflow on a real single-node SLURM cluster through the profile.

The run is the session's `workflow` fixture (conftest.py), in a copy of the repository.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest
import yaml

from helpers import SNAKEMAKE, slurm_cluster
from helpers.workflow import CONFIG, assert_same_results, copy_repo, write_config

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real single-node SLURM (Debian's slurm-wlm + munge) with two fake GPUs; skipped where it cannot run."""
    reason = slurm_cluster.why_not_available()
    if reason:
        pytest.skip(reason)
    with slurm_cluster.single_node_cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env


def test_slurm_profile_runs_the_workflow_and_a_cancelled_training_resumes(workflow, cluster, tmp_path):
    """`snakemake --profile slurm` end to end on a real cluster. Fold 0's training is cancelled with scancel
    (SIGTERM) after its first epoch; the profile's retry resumes it from its last state. Every result equals
    the local run's, and the GPU rules asked SLURM for a GPU."""
    from cineflow.models.trained import load_checkpoint

    workdir = copy_repo(tmp_path / "cluster")
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    del config["models"]["tiny_ef"]
    config["tracking"] = {}  # routing and resuming are tested here; tracking, by the session's run (its imports cost)
    write_config(workdir, config)
    log = open(tmp_path / "snakemake.log", "w")
    run = subprocess.Popen([SNAKEMAKE, "--profile", "slurm", *slurm_cluster.EXECUTOR_ARGS], cwd=workdir,
                           env=cluster, stdout=log, stderr=subprocess.STDOUT)

    def tail() -> str:
        return (tmp_path / "snakemake.log").read_text()[-6000:]

    state = workdir / "results" / ".resume" / "tiny" / "fold_0" / "state.pt"
    while not state.exists():
        assert run.poll() is None, f"the run ended before training started:\n{tail()}"
        time.sleep(0.02)
    job = next(j for j in slurm_cluster.job_records(cluster)
               if j["Comment"] == "rule_train_wildcards_tiny_0" and j["JobState"] == "RUNNING")
    subprocess.run(["scontrol", "suspend", job["JobId"]], env=cluster, check=True, timeout=30)
    assert state.exists(), "fold 0's training finished before it could be cancelled"
    done = load_checkpoint(state)["epoch"]  # epochs saved when SLURM stopped the job
    subprocess.run(["scancel", job["JobId"]], env=cluster, check=True, timeout=30)
    assert run.wait(timeout=800) == 0, tail()
    log.close()

    records = {j["JobId"]: j for j in slurm_cluster.job_records(cluster)}
    assert records[job["JobId"]]["JobState"] == "CANCELLED"
    by_rule: dict[str, list[dict]] = {}
    for record in records.values():
        by_rule.setdefault(record["Comment"].split("_wildcards")[0].removeprefix("rule_"), []).append(record)
    assert {"cache_shard", "normalisation", "train", "evaluate", "gradcam", "external"} == set(by_rule)
    for rule, jobs in by_rule.items():
        gpu = rule in ("train", "evaluate", "gradcam", "external")
        assert all((j["Partition"] == "gpu") == gpu for j in jobs), (rule, jobs)
        assert all(("gpu:1" in j.get("TresPerJob", "")) == gpu for j in jobs), (rule, jobs)
    trains = [(j["JobId"], j["Comment"], j["JobState"], j.get("ExitCode"), j.get("Reason")) for j in by_rule["train"]]
    assert len(trains) == 3, f"two folds plus the resubmitted one, not {trains}:\n{tail()}"

    train_log = (workdir / "results" / "logs" / "train" / "tiny" / "fold_0.log").read_text()
    resumed = int(re.search(r"resuming from epoch (\d+)", train_log).group(1))
    assert resumed >= done >= 1  # at most the epoch in progress was lost
    metrics = json.loads((workdir / "results" / "tiny" / "fold_0" / "metrics.json").read_text())
    assert metrics["trained_on"]["slurm_job_id"] != job["JobId"]  # the retry finished it
    assert metrics["provenance"]["hardware"]["slurm_job_id"] in records
    assert metrics["provenance"]["hardware"]["cuda_visible_devices"] in ("0", "1")  # a GPU of its own
    assert_same_results(workflow, workdir, ["tiny"], [0, 1])
    assert "SLURM job" in (workdir / "results" / "report.html").read_text()
