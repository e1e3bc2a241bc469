"""`make demo` itself: the default config on the built-in demo data, end to end (its own file, so the
suite's workers run it beside the tiny-config workflow tests)."""

from __future__ import annotations

import json

import pytest

from helpers.workflow import copy_repo, snakemake

pytestmark = pytest.mark.workflow


def test_demo_with_the_default_config_learns(tmp_path):
    """`make demo`'s workflow and config: held-out patients are classified from motion alone."""
    workdir = copy_repo(tmp_path)
    snakemake(workdir, "results/report.html")
    summary = json.loads((workdir / "results" / "tiny3d" / "summary.json").read_text())
    assert summary["metrics"]["roc_auc"]["mean"] >= 0.90, summary["metrics"]["roc_auc"]
    assert len(summary["metrics"]["roc_auc"]["per_fold"]) == 3
