"""Shared fixtures: tiny configs and a tiny cached dataset built with the real library code."""

from __future__ import annotations

import os
import shutil

import pytest

# no model hub here: fail fast instead of retrying the network (workflow subprocesses inherit it)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cineflow.config import CacheConfig, DemoConfig, SplitConfig, resolve
from helpers import TINY
from helpers.workflow import CONFIG, copy_repo, snakemake, write_config


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker more than the cores. The workflow tests spend part of their time waiting (on
    Snakemake's subprocesses, SLURM's polling, a browser, a file lock); a third worker on 2 cores took the
    suite from 27.6 to 24.7 minutes (README's test command, this machine), with every test passing."""
    return (os.cpu_count() or 1) + 1


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    return resolve(TINY)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, tiny_config):
    """(manifest, quarantine, folds) of the tiny demo, made by demo -> cache -> manifest -> splits."""
    from cineflow.data import demo
    from cineflow.data.cache import cache_shard
    from cineflow.data.labels import validate
    from cineflow.data.manifest import build_manifest
    from cineflow.data.splits import make_splits

    root = tmp_path_factory.mktemp("tiny_demo")
    cfg = tiny_config
    labels = demo.write_dataset(DemoConfig.from_dict(cfg["demo"]), cfg["seed"], cfg["data"]["classes"], root)
    labels = validate(labels, cfg["data"]["classes"], root, subgroups=demo.SUBGROUP_COLUMNS)
    shard = cache_shard(labels, root, root / "cache", CacheConfig.from_dict(cfg["cache"]))
    manifest, quarantine = build_manifest(labels, [shard])
    folds = make_splits(manifest, SplitConfig.from_dict(cfg["splits"]), cfg["seed"])
    return manifest, quarantine, folds


@pytest.fixture(scope="session")
def workflow(tmp_path_factory, worker_id):
    """One run of the whole workflow on helpers.workflow.CONFIG, in a copy of the repository, for the
    test_workflow_* files. The run is made once per test session: the first pytest-xdist worker that needs it
    builds it under a file lock, and every worker then works in a copy of its own (the tests edit and rerun
    it), so each copy also shows that a moved project folder reruns nothing."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    built = shared / "workflow-built"
    with FileLock(str(shared / "workflow-built.lock")):
        if not (built / ".built").exists():
            shutil.rmtree(built, ignore_errors=True)
            copy_repo(built)
            write_config(built, CONFIG)
            snakemake(built)
            (built / ".built").touch()
    workdir = tmp_path_factory.mktemp("workflow") / "repo"
    shutil.copytree(built, workdir, symlinks=True)  # copy2: modification times kept
    return workdir
