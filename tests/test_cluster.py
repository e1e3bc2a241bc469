"""SLURM routing from the config's `cluster:` section: the resources each rule gets, and the sbatch options
snakemake-executor-plugin-slurm makes of them, for the profile as shipped and for two site shapes."""

from __future__ import annotations

import re
import subprocess
from types import SimpleNamespace

import pytest
import yaml

from cineflow.cluster import ClusterConfig
from cineflow.config import ConfigError
from helpers import REPO, SNAKEMAKE, TINY, settings
from helpers.workflow import copy_repo, write_config

GPU_RULES = {"train", "train_inner", "evaluate", "gradcam", "external", "predict"}
CPU_RULES = {"cache_shard", "cache_shard_model", "normalisation", "normalisation_model"}


def test_gpu_jobs_ask_for_gpus_or_gres_never_both():
    gpus = settings(ClusterConfig, "cluster", gpu_model="a100", constraint="a100|h100", account="lab")
    assert gpus.gpu_job(2, 6) == {"slurm_partition": "gpu", "slurm_account": "lab", "gpu": 2, "gpu_model": "a100",
                                  "constraint": "a100|h100", "cpus_per_gpu": 6}
    gres = settings(ClusterConfig, "cluster", gpu_request="gres", gpu_model="v100", cpus_per_gpu=8,
                    gpu_partition=None)
    assert gres.gpu_job(2, 6) == {"gpu": 0, "gres": "gpu:v100:2", "cpus_per_gpu": 8}
    assert gres.cpu_job() == {"slurm_partition": "cpu"}
    assert settings(ClusterConfig, "cluster", cpu_partition=None).cpu_job() == {}


def test_too_few_cpus_per_gpu_for_training_stops_with_both_fixes():
    with pytest.raises(ConfigError, match=r"cpus_per_gpu is 4.*6 threads.*loader_workers"):
        settings(ClusterConfig, "cluster", cpus_per_gpu=4).check(6)
    settings(ClusterConfig, "cluster", cpus_per_gpu=6).check(6)


def sbatch_options(resources: dict, threads: int) -> dict:
    """The sbatch options the SLURM plugin writes for a job with these resources, from the plugin's own
    functions (GPUs, CPUs) and its -p/-A/-C spelling: option -> value."""
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm_jobstep import get_cpu_setting

    class Resources(dict):
        __getattr__ = dict.__getitem__

    job = SimpleNamespace(resources=Resources(resources), threads=threads)
    gpu = bool(resources.get("gpu")) or "gpu" in resources.get("gres", "")
    words = f"{set_gres_string(job)} {get_cpu_setting(job, gpu)}".split()
    options = dict(word.lstrip("-").split("=", 1) for word in words)
    for key, option in (("slurm_partition", "p"), ("slurm_account", "A"), ("constraint", "C")):
        if key in resources:
            options[option] = resources[key]
    return options


def dry_run_jobs(workdir, *args: str) -> list[tuple[str, dict, int]]:
    """(rule, resources, threads) of every job `snakemake --profile slurm -n --forceall` plans."""
    run = subprocess.run([SNAKEMAKE, "--profile", "slurm", "-n", "--forceall", *args], cwd=workdir,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", run.stdout)[1:]:
        rule = re.match(r"rule (\w+):", block).group(1)
        text = re.search(r"^\s+resources: (.*)$", block, re.M).group(1)
        resources = {}
        for item in text.split(", "):
            key, value = item.split("=", 1)
            resources[key] = int(value) if value.isdigit() else value
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        jobs.append((rule, resources, int(threads.group(1)) if threads else 1))
    return jobs


def local_rules(config: dict) -> set[str]:
    """The rules that run on the submitting host: the Snakefile's `localrules:`, and the external sets' demo
    data (their rule says `localrule: True`)."""
    block = re.search(r"^localrules:\n((?:    \w+,\n)+)", (REPO / "Snakefile").read_text(), re.M).group(1)
    return {name.strip(" ,") for name in block.splitlines()} | {
        f"external_demo_data_{name}" for name in config["external"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The tiny workflow with every kind of rule: repeated splits, a model with a cache of its own and two
    GPUs, a sweep's inner folds, an external set and a predict target."""
    workdir = copy_repo(tmp_path_factory.mktemp("site"))
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["splits"]["repeats"] = 2
    config["models"]["wide"] = {**config["models"]["tiny"], "size": 16, "gpus": 2, "normalise": "fold"}
    config["external"] = {"site_c": {"layout": "demo", "root": "resources/demo_site_c", "seed": 11,
                                     "demo": {"n_patients": 6, "sites": ["C"]}}}
    config["resources"] = {"train_threads": 2, "loader_workers": 3}
    config["sweep"] = {"grids": {"tiny": {"arch_params.width": [4, 2]}}, "inner_folds": 2}
    (workdir / "new_videos").mkdir()
    config["predict"] = {"input": "new_videos"}
    write_config(workdir, config)
    return workdir, config


def routed(site, *args: str) -> dict[str, list[dict]]:
    """rule -> the sbatch options of each of its jobs that SLURM gets (every planned rule is local or routed)."""
    workdir, config = site
    jobs = dry_run_jobs(workdir, "results/report.html", "results/predict/wide/predictions.csv", *args)
    local = local_rules(config)
    planned = {rule for rule, _, _ in jobs}
    assert planned - local == GPU_RULES | CPU_RULES, "a rule is neither local nor routed by the test's tables"
    options: dict[str, list[dict]] = {}
    for rule, resources, threads in jobs:
        if rule not in local:
            options.setdefault(rule, []).append(sbatch_options(resources, threads))
    return options


def test_the_profile_as_shipped_routes_gpu_rules_to_gpus(site):
    options = routed(site)
    for rule in GPU_RULES:
        cpus = "5" if rule.startswith("train") else "2"  # train_threads 2 + loader_workers 3
        for job in options[rule]:
            assert job["p"] == "gpu" and job["cpus-per-gpu"] == cpus and "gres" not in job and "A" not in job, (
                rule, job)
    assert sorted(job["gpus"] for job in options["train"]) == ["1"] * 8 + ["2"] * 4  # 2 folds × 2 repeats
    assert all(job["gpus"] == "1" for rule in GPU_RULES - {"train", "train_inner"} for job in options[rule])
    for rule in CPU_RULES:
        assert all(job == {"p": "cpu", "cpus-per-task": "1"} for job in options[rule]), rule


def test_a_site_with_partitions_and_gpus_by_model_set_on_the_command_line(site):
    """--config merges into config.yaml key by key: the CPU partition it leaves out stays."""
    options = routed(site, "--config", "cluster={gpu_partition: a100, gpu_model: a100, cpus_per_gpu: 8}")
    for rule in GPU_RULES:
        for job in options[rule]:
            assert job["p"] == "a100" and job["cpus-per-gpu"] == "8" and job["gpus"].startswith("a100:"), (rule, job)
            assert "gres" not in job and "A" not in job
    assert sorted(job["gpus"] for job in options["train"]) == ["a100:1"] * 8 + ["a100:2"] * 4
    for rule in CPU_RULES:
        assert all(job["p"] == "cpu" and "gpus" not in job for job in options[rule]), rule


def test_a_gres_only_site_with_an_account_in_a_site_config_file(site, tmp_path):
    """Generic resources instead of --gpus, every job under an account, CPU jobs on the default partition."""
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump({"cluster": {"gpu_partition": "gpu_v100", "cpu_partition": None,
                                                     "account": "lab42", "gpu_request": "gres"}}))
    options = routed(site, "--configfile", "config.yaml", str(site_file))
    for rule in GPU_RULES:
        cpus = "5" if rule.startswith("train") else "2"
        for job in options[rule]:
            assert job["p"] == "gpu_v100" and job["A"] == "lab42" and job["cpus-per-gpu"] == cpus, (rule, job)
            assert "gpus" not in job and job["gres"].startswith("gpu:"), (rule, job)
    assert sorted(job["gres"] for job in options["train"]) == ["gpu:1"] * 8 + ["gpu:2"] * 4
    for rule in CPU_RULES:
        assert all(job == {"A": "lab42", "cpus-per-task": "1"} for job in options[rule]), rule


def test_a_set_resources_override_changes_only_what_it_names(site):
    """The README's old override, which replaced the profile's whole set-resources list: now the profile
    has none, so it changes train's partition and nothing else."""
    options = routed(site, "--set-resources", "train:slurm_partition=a100")
    assert all(job["p"] == "a100" and job["cpus-per-gpu"] == "5" for job in options["train"])
    for rule in GPU_RULES - {"train"}:
        assert all(job["p"] == "gpu" and job["gpus"] == "1" for job in options[rule]), rule


def test_too_few_cpus_per_gpu_stops_the_parse(site):
    workdir, _ = site
    run = subprocess.run([SNAKEMAKE, "--profile", "slurm", "-n", "--config", "cluster={cpus_per_gpu: 4}"],
                         cwd=workdir, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "cluster.cpus_per_gpu is 4" in run.stdout + run.stderr
