"""Shared fixtures: tiny configs and a tiny cached dataset built with the real library code."""

from __future__ import annotations

import os

import pytest

# no model hub here: fail fast instead of retrying the network (workflow subprocesses inherit it)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cineflow.config import CacheConfig, DemoConfig, SplitConfig, resolve
from helpers import TINY
from helpers.workflow import CONFIG, copy_repo, snakemake, write_config


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
def workflow(tmp_path_factory):
    """One run of the whole workflow on helpers.workflow.CONFIG, in a copy of the repository; the test_workflow_*
    files share it (one run per pytest-xdist worker that takes one of them)."""
    workdir = copy_repo(tmp_path_factory.mktemp("workflow"))
    write_config(workdir, CONFIG)
    snakemake(workdir)
    return workdir
