"""Shared fixtures: tiny configs and a tiny cached dataset built with the real library code."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# no model hub here: fail fast instead of retrying the network (workflow subprocesses inherit it)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cineflow.config import CacheConfig, DemoConfig, SplitConfig, resolve

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

TINY = {
    "seed": 3,
    "demo": {"n_patients": 16, "clips_per_patient": 1, "hflip_fraction": 0.3, "n_frames": 16, "size": 32,
             "n_corrupt": 1},
    "cache": {"shards": 2, "size": 24},
    "splits": {"folds": 2, "val_fraction": 0.25},
    "models": {"tiny": {"arch": "tiny3d", "arch_params": {"width": 4}, "clip_length": 8, "clip_period": 1,
                        "epochs": 1, "batch_size": 4,
                        "augment": {"hflip": {"p": 0.5}, "brightness": {"p": 0.5}, "rotation": {"p": 0.3},
                                    "frame_mask": {"p": 0.3}}}},
    "evaluate": {"eval_clips": 2, "bootstrap": 100},
    "gradcam": {"n_videos": 1},
    "resources": {"train_threads": 1},
}


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    return resolve(TINY)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, tiny_config):
    """(manifest, quarantine, folds) of the tiny demo, made by demo -> cache -> manifest -> splits."""
    from cineflow import demo
    from cineflow.cache import cache_shard
    from cineflow.labels import validate
    from cineflow.manifest import build_manifest
    from cineflow.splits import make_splits

    root = tmp_path_factory.mktemp("tiny_demo")
    cfg = tiny_config
    labels = demo.write_dataset(DemoConfig.from_dict(cfg["demo"]), cfg["seed"], cfg["data"]["classes"], root)
    labels = validate(labels, cfg["data"]["classes"], root)
    shard = cache_shard(labels, root, root / "cache", CacheConfig.from_dict(cfg["cache"]))
    manifest, quarantine = build_manifest(labels, [shard])
    folds = make_splits(manifest, SplitConfig.from_dict(cfg["splits"]), cfg["seed"])
    return manifest, quarantine, folds


def settings(cls, section: str, **overrides):
    """A typed config section with the schema's defaults and `overrides`."""
    return cls.from_dict(resolve({section: overrides})[section])


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table Snakemake prints for a (dry) run."""
    counts, inside = {}, False
    for line in output.splitlines():
        if line.startswith("Job stats:"):
            inside = True
            continue
        parts = line.split()
        if inside and len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            counts[parts[0]] = int(parts[1])
    return counts
