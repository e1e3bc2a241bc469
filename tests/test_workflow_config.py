"""The workflow's parse: config errors stop it, it imports no torch or scikit-learn, lint and format
are clean.

The run is the session's `workflow` fixture (conftest.py), in a copy of the repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import REPO, SNAKEMAKE, TINY
from helpers.workflow import CONFIG, config_in, snakemake

pytestmark = pytest.mark.workflow


def test_unknown_config_key_fails_at_parse_time(workflow):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["cache"]["sise"] = 20
    with config_in(workflow, config):
        out = snakemake(workflow, "-n", check=False)
    assert out.returncode != 0 and "sise" in out.stdout + out.stderr


def test_a_model_entry_that_cannot_work_fails_at_parse_time(workflow):
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["models"]["tiny_ef"].pop("target")
    with config_in(workflow, config):
        out = snakemake(workflow, "-n", check=False)
    assert out.returncode != 0 and "'target' is a required property" in out.stdout + out.stderr
    # a target that data.targets does not list: cineflow's own check, naming the key
    config["models"]["tiny_ef"]["target"] = "esv"
    with config_in(workflow, config):
        out = snakemake(workflow, "-n", check=False)
    assert out.returncode != 0 and "models/tiny_ef/target" in out.stdout + out.stderr


def test_lint_and_format():
    lint = subprocess.run([SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0 and "Lints for" not in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    snakefmt = str(Path(SNAKEMAKE).with_name("snakefmt"))
    fmt = subprocess.run([snakefmt, "--check", "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_parsing_the_workflow_imports_neither_torch_nor_sklearn():
    """Every `snakemake` call, and every cluster job twice, parses the workflow: the library modules that
    rules/common.smk imports must not pull in torch or scikit-learn (about 3 s together)."""
    modules = re.findall(r"^from (cineflow[\w.]*) import", (REPO / "rules" / "common.smk").read_text(), re.M)
    assert len(modules) >= 4
    code = (f"import sys; import {', '.join(modules)}; "
            "print(sorted({'torch', 'sklearn'} & set(sys.modules))); "
            "print(sorted(m for m in sys.modules if m.startswith('cineflow.')))")
    out = subprocess.run([str(Path(SNAKEMAKE).with_name("python")), "-c", code], cwd=REPO / "src",
                         capture_output=True, text=True, timeout=120, check=True)
    heavy, library = out.stdout.strip().splitlines()
    assert heavy == "[]", out.stdout + out.stderr
    # the config and light table code only: no model, training, evaluation or report module
    assert not re.search(r"cineflow\.(models|train|evaluate|report)", library), library
