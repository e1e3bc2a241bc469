"""The encoders researchers start from, side by side in one workflow: the demo CNN, an EMA of it, a LoRA-tuned
ViT, and a logistic probe on a frozen tiny encoder whose embeddings are computed once, through the comparison.
The models are added to the session's run (conftest.workflow), so only their own jobs run here."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from helpers.workflow import CONFIG as SESSION
from helpers.workflow import planned, snakemake, write_config

pytestmark = pytest.mark.workflow

CONFIG = copy.deepcopy(SESSION)
VIT = {"backbone": "vit_tiny_patch16_224", "backbone_params": {"depth": 1, "patch_size": 8}, "hidden": 8}
CONFIG["models"].update({
    "tiny_ema": {**CONFIG["models"]["tiny"], "epochs": 1, "augment": {}, "ema": {"decay": 0.9}},
    "vit_lora": {"arch": "frame2d", "arch_params": VIT, "clip_length": 4, "epochs": 1, "batch_size": 4,
                 "adapter": {"kind": "lora", "r": 2}},
    "probe_tiny": {"arch": "probe", "probe": {"encoder": "frozen", "head": "logistic"}},
})
CONFIG["encoders"] = {"frozen": {"arch": "tiny3d", "arch_params": {"width": 4}, "clip_length": 8, "clip_period": 1,
                                 "normalise": {"mean": [0.5], "std": [0.25]}}}


def test_a_probe_a_lora_and_an_ema_model_are_compared_with_the_demo_cnn(workflow, tmp_path):
    workdir = tmp_path / "repo"  # a copy: the comparison and report of this worker's run stay the session's
    shutil.copytree(workflow, workdir, symlinks=True)
    write_config(workdir, CONFIG)
    run = snakemake(workdir, "results/comparison.json")
    assert "rule embed:" in run.stdout + run.stderr
    comparison = json.loads((workdir / "results" / "comparison.json").read_text())
    assert {"tiny", "tiny_ema", "vit_lora", "probe_tiny"} <= set(json.dumps(comparison).split('"'))
    for model in ("tiny_ema", "vit_lora", "probe_tiny"):
        summary = json.loads((workdir / f"results/{model}/summary.json").read_text())
        assert 0 <= summary["pooled"]["metrics"]["roc_auc"] <= 1
    with np.load(workdir / "results/embeddings/frozen/embeddings.npz", allow_pickle=False) as stored:
        assert stored["embedding"].shape[0] == len(pd.read_parquet(workdir / "results/manifest.parquet"))
    history = pd.read_csv(workdir / "results/probe_tiny/fold_0/history.csv")
    assert len(history) == 1 and history["trains"].iloc[0] == "head (probe)"

    # a probe's head settings refit that probe only: no embedding pass, no other model's training
    changed = copy.deepcopy(CONFIG)
    changed["models"]["probe_tiny"]["probe"]["C"] = 0.1
    write_config(workdir, changed)
    plan = planned(workdir, "results/comparison.json")
    assert plan.get("probe") == 2 and "embed" not in plan and "train" not in plan
