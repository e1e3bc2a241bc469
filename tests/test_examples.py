"""config/examples: one ready config per study family. Each must parse and plan on data laid out as
it expects (dry run), and each of its models must train on tiny inputs with its own recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cineflow.config import CacheConfig, DemoConfig, ModelConfig, SplitConfig, resolve
from cineflow.data.normalisation import fold_normalisation
from cineflow.train.fold import FoldPaths, train_fold
from helpers import REPO, job_counts
from helpers.studies import STUDIES, write_echonet_dynamic
from helpers.workflow import copy_repo, snakemake

EXAMPLES = sorted((REPO / "config" / "examples").glob("*.yaml"))


def test_every_study_family_has_an_example():
    archs = {m["arch"] for e in EXAMPLES for m in yaml.safe_load(e.read_text())["models"].values()}
    tasks = {m.get("task", "classification") for e in EXAMPLES for m in yaml.safe_load(e.read_text())["models"].values()}
    assert len(EXAMPLES) >= 5
    assert {"r2plus1d_18", "frame2d", "image2d", "videomae"} <= archs and tasks == {"classification", "regression"}


def lay_out(example: Path, workdir: Path) -> dict:
    """Tiny data where the example expects it, in its study's on-disk format; returns the example's config."""
    config = yaml.safe_load(example.read_text())
    STUDIES.get(example.stem, write_echonet_dynamic)(workdir / config["data"]["root"])
    return config


@pytest.mark.workflow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_plans_a_run_on_data_laid_out_as_it_expects(example, tmp_path):
    workdir = copy_repo(tmp_path / "repo")
    config = lay_out(example, workdir)
    out = snakemake(workdir, "-n", "--configfile", f"config/examples/{example.name}", "--replace-workflow-config")
    jobs = job_counts(out.stdout + out.stderr)
    # EchoNet-Dynamic and the lung X-ray archive bring their own train/val/test: one fold
    folds = 1 if config["data"]["layout"] in ("echonet", "imagefolder") else resolve(config)["splits"]["folds"]
    assert jobs["train"] == folds * len(config["models"]) and jobs["report"] == 1
    assert "demo_data" not in jobs  # the demo config was replaced, not merged


@pytest.fixture(scope="module")
def clips32(tmp_path_factory):
    """A tiny cached dataset at 32 px (VideoMAE's patches are 16 px), RGB, and its first fold."""
    from cineflow.data import demo
    from cineflow.data.cache import cache_shard
    from cineflow.data.labels import validate
    from cineflow.data.manifest import build_manifest
    from cineflow.data.splits import make_splits

    root = tmp_path_factory.mktemp("clips32")
    cfg = resolve({"demo": {"n_patients": 12, "clips_per_patient": 1, "n_frames": 8, "size": 32, "n_corrupt": 0},
                   "cache": {"size": 32, "color": "rgb"}, "splits": {"folds": 2, "val_fraction": 0.25}})
    labels = demo.write_dataset(DemoConfig.from_dict(cfg["demo"]), 0, cfg["data"]["classes"], root)
    labels = validate(labels, cfg["data"]["classes"], root, subgroups=demo.SUBGROUP_COLUMNS)
    manifest, _ = build_manifest(labels, [cache_shard(labels, root, root / "cache",
                                                      CacheConfig.from_dict(cfg["cache"]))])
    return manifest, make_splits(manifest, SplitConfig.from_dict(cfg["splits"]), 0)[0]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_models_train_on_tiny_inputs(example, clips32, tmp_path):
    config = resolve(yaml.safe_load(example.read_text()))
    manifest, split = clips32
    classes = config["data"]["classes"]
    # the example's labels on the tiny clips: classes by EF rank
    manifest = manifest.assign(label=[classes[int(r * len(classes))] for r in manifest["ef"].rank(pct=True) - 1e-9])
    split = split.groupby("partition").head(4)  # a few steps are enough
    for name, model in config["models"].items():
        tiny = dict(model, pretrained=False, epochs=1, batch_size=2, clip_length=min(model["clip_length"], 4),
                    accumulate=1, patience=1, val_every_steps=None, freeze_epochs=0,
                    stages=[dict(stage, epochs=1) for stage in model["stages"][-1:]])  # the last stage, 1 epoch
        if "backbone" in model["arch_params"]:  # timm backbones shrunk: untrained large ones overflow at 32 px
            tiny["arch_params"] = dict(model["arch_params"], backbone="test_efficientnet")
        paths = FoldPaths(model=tmp_path / f"{name}.pt", last=tmp_path / f"{name}.last.pt",
                          history=tmp_path / f"{name}.csv", state=tmp_path / f"{name}.state")
        history = train_fold(ModelConfig.from_dict(tiny), classes, split, manifest,
                             fold_normalisation(split, manifest, seed=0), paths, seed=0, device=torch.device("cpu"))
        assert len(history) == 1 and np.isfinite(history["train_loss"]).all()
        ckpt = torch.load(tmp_path / f"{name}.pt", weights_only=True)
        assert ckpt["model"]["arch"] == model["arch"] and ckpt["loss"] == (model["loss"] or "cross_entropy")
