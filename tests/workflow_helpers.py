"""Running the Snakemake workflow from tests, in a copy of the repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from conftest import REPO, SNAKEMAKE, job_counts


def edit(path: Path) -> None:
    """A real edit: Snakemake skips inputs whose checksum is unchanged, so `touch` is not enough."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n# edited by a test\n")


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([SNAKEMAKE, *args, "--cores", "2", "--resources", "gpu=1"], cwd=workdir,
                            capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def planned(workdir: Path, *targets: str) -> dict[str, int]:
    out = snakemake(workdir, "-n", *targets)
    return job_counts(out.stdout + out.stderr)


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def copy_repo(workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml", "rules", "scripts", "schemas", "src", "envs", "report"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, workdir / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, workdir / name)
    return workdir
