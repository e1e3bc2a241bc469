"""The tiny workflow through a real single-node SLURM (tests/slurm_cluster.py) versus locally.

Figures: local_s and slurm_s (the whole tiny workflow, `snakemake` vs `snakemake --profile slurm`, from
a clean folder); per cluster rule, <rule>_job_s (SLURM's submit -> end, mean over the rule's jobs),
<rule>_script_s (the rule's own benchmark time) and <rule>_overhead_s (the difference: scheduling,
two Snakemake start-ups in the job step, srun). Needs root (skipped otherwise, with the reason). A warm-up
round of both, then 3 rounds, each a local and a cluster run from clean folders on a fresh cluster: medians, with
their `_spread`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from echonet_like import median_spread, save  # noqa: E402

from helpers import SNAKEMAKE, TINY, slurm_cluster  # noqa: E402
from helpers.workflow import copy_repo, write_config  # noqa: E402

ROUNDS = 3
CLUSTER_RULES = ("cache_shard", "normalisation", "train", "evaluate", "gradcam")


def timed_run(workdir: Path, *args: str, env: dict | None = None) -> float:
    tic = time.perf_counter()
    subprocess.run([SNAKEMAKE, *args], cwd=workdir, env=env, check=True, capture_output=True, timeout=1800)
    return round(time.perf_counter() - tic, 1)


def job_figures(records: list[dict], workdir: Path) -> dict:
    figures = {}
    for rule in CLUSTER_RULES:
        jobs = [r for r in records if r["Comment"].split("_wildcards")[0] == f"rule_{rule}"]
        spans = [(datetime.fromisoformat(j["EndTime"]) - datetime.fromisoformat(j["SubmitTime"])).total_seconds()
                 for j in jobs]
        scripts = [pd.read_csv(p, sep="\t")["s"].iloc[0]
                   for p in (workdir / "results" / "benchmarks" / rule).rglob("*.tsv")]
        job_s, script_s = sum(spans) / len(spans), sum(scripts) / len(scripts)
        figures.update({f"{rule}_job_s": round(job_s, 1), f"{rule}_script_s": round(script_s, 1),
                        f"{rule}_overhead_s": round(job_s - script_s, 1), f"{rule}_jobs": len(jobs)})
    return figures


def main() -> None:
    reason = slurm_cluster.why_not_available()
    if reason:
        print(f"skipped: {reason}")
        return
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in range(ROUNDS + 1):  # round 0 is the warm-up: page cache, bytecode, the daemons' first jobs
            local, cluster = copy_repo(tmp / f"local{r}"), copy_repo(tmp / f"cluster{r}")
            for workdir in (local, cluster):
                write_config(workdir, TINY)
            figures = {"local_s": timed_run(local, "--cores", "2", "--resources", "gpu=1")}
            with slurm_cluster.single_node_cluster(tmp / f"slurm{r}") as env:
                figures["slurm_s"] = timed_run(cluster, "--profile", "slurm", *slurm_cluster.EXECUTOR_ARGS, env=env)
                figures.update(job_figures(slurm_cluster.job_records(env), cluster))
            print(r, figures, flush=True)
            for key, value in figures.items():
                if r:
                    runs.setdefault(key, []).append(value)
    figures = {"rounds": ROUNDS}
    for key, values in runs.items():
        figures.update({key: values[0]} if key.endswith("_jobs") else median_spread(key, values, 1))
    save("slurm", {**figures, "status_check_start_s": 4,
                   "cluster": f"single-node SLURM 22.05 (Debian), {os.cpu_count()} cores"})


if __name__ == "__main__":
    main()
