"""Running the Snakemake workflow from tests, in a copy of the repository."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import yaml

from helpers import REPO, SNAKEMAKE, TINY, job_counts

# the session's run (conftest.workflow): the binary tiny model and an EF regression side by side
CONFIG = yaml.safe_load(yaml.safe_dump(TINY))
# eight short epochs: a SLURM job cancelled after the first one has several left to resume
CONFIG["models"]["tiny"].update(epochs=8, patience=8, gradcam_every=4)  # and Grad-CAMs after epochs 4 and 8
CONFIG["models"]["tiny_ef"] = {"arch": "tiny3d", "arch_params": {"width": 4}, "task": "regression", "target": "ef",
                               "loss": "weighted_mse", "clip_length": 8, "clip_period": 1, "epochs": 1,
                               "batch_size": 4}
CONFIG["evaluate"]["mc_dropout"] = 3
CONFIG["tracking"] = {"mlflow": True}  # each fold's run gets its checkpoint, test metrics, CAMs and plots
# another hospital: other patients (another seed), a site of its own, one broken file
CONFIG["external"] = {"site_c": {"layout": "demo", "root": "resources/demo_site_c", "seed": 11,
                                 "demo": {"n_patients": 6, "sites": ["C"]}}}


@contextlib.contextmanager
def edited(path: Path):
    """A real edit of `path` for a while (Snakemake skips inputs whose checksum is unchanged, so `touch` is
    not enough); the original text is back afterwards, and with it a DAG with nothing to do."""
    original = path.read_text(encoding="utf-8")
    path.write_text(original + "\n# edited by a test\n", encoding="utf-8")
    try:
        yield
    finally:
        path.write_text(original, encoding="utf-8")


@contextlib.contextmanager
def config_in(workdir: Path, config: dict):
    """Run with `config` for a while; the session's config is back afterwards."""
    write_config(workdir, config)
    try:
        yield
    finally:
        write_config(workdir, CONFIG)


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run([SNAKEMAKE, *args, "--cores", "2", "--resources", "gpu=1"], cwd=workdir,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def started(workdir: Path, *args: str) -> subprocess.Popen:
    """Snakemake running in the background, in a process group of its own with its jobs (they inherit it)."""
    log = open(workdir / f"snakemake-{time.monotonic_ns()}.out", "w")
    return subprocess.Popen([SNAKEMAKE, *args, "--cores", "2", "--resources", "gpu=1"], cwd=workdir, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def interrupt_when(proc: subprocess.Popen, ready, sig: int = signal.SIGKILL, timeout: float = 600) -> None:
    """Send `sig` once `ready()` is true: SIGKILL to the whole process group (Snakemake and every job, as when
    a machine loses power), anything else to Snakemake alone (as a scheduler or Ctrl-C would). Fails if the
    run ends first. Returns when Snakemake has exited and no process of its group is left."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before the moment to interrupt it"
        assert time.monotonic() < deadline, "the moment to interrupt never came"
        time.sleep(0.05)
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    proc.wait(timeout=120)
    while time.monotonic() < deadline:  # the group is gone when its last process is
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of the interrupted run outlived it ({sig!r})")


def planned(workdir: Path, *targets: str) -> dict[str, int]:
    out = snakemake(workdir, "-n", *targets)
    return job_counts(out.stdout + out.stderr)


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def copy_repo(workdir: Path, without: tuple[str, ...] = ()) -> Path:
    """The workflow's files in `workdir` (not `without` those, e.g. src: the installed package's then)."""
    workdir.mkdir(parents=True, exist_ok=True)
    names = ("Snakefile", "config.yaml", "config", "rules", "scripts", "src", "envs", "report", "slurm")
    for name in (n for n in names if n not in without):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, workdir / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, workdir / name)
    return workdir


def wheel_install(where: Path) -> Path:
    """A fresh virtual environment with cineflow installed from its built wheel (package data included),
    not from the checkout; the other dependencies come from the test environment's site-packages."""
    source = where / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    python = Path(SNAKEMAKE).with_name("python")
    subprocess.run([str(python), "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(where / "dist"), str(source)], check=True, timeout=300)
    env = where / "env"
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    paths = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([str(env / "bin" / "python"), "-c", paths], capture_output=True, text=True,
                          check=True).stdout.strip()
    deps = subprocess.run([str(python), "-c", paths], capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "dependencies.pth").write_text(deps + "\n")  # a plain path: the editable install is not seen
    subprocess.run([str(python), "-m", "pip", "--python", str(env / "bin" / "python"), "install", "-q", "--no-deps",
                    *map(str, (where / "dist").glob("cineflow-*.whl"))], check=True, timeout=300)
    where_from = subprocess.run([str(env / "bin" / "python"), "-c", "import cineflow; print(cineflow.__file__)"],
                                cwd=where, capture_output=True, text=True, check=True).stdout
    assert where_from.startswith(str(env)), where_from
    return env


def assert_same_results(first: Path, second: Path, models: list[str], folds: list[int]) -> None:
    """Two runs of one config agree: byte-identical split CSVs and predictions, the same normalisation,
    training histories and metrics (only provenance and timings may differ)."""
    import json

    import pandas as pd

    a, b = first / "results", second / "results"

    def numbers(path: Path) -> dict:
        data = json.loads(path.read_text())
        return {k: v for k, v in data.items() if k not in ("provenance", "trained_on")}

    pd.testing.assert_frame_equal(pd.read_parquet(a / "manifest.parquet"), pd.read_parquet(b / "manifest.parquet"))
    for fold in folds:
        assert (a / "splits" / f"fold_{fold}.csv").read_bytes() == (b / "splits" / f"fold_{fold}.csv").read_bytes()
        assert numbers(a / "splits" / f"fold_{fold}.norm.json") == numbers(b / "splits" / f"fold_{fold}.norm.json")
        for model in models:
            run_a, run_b = a / model / f"fold_{fold}", b / model / f"fold_{fold}"
            pd.testing.assert_frame_equal(pd.read_csv(run_a / "history.csv").drop(columns="seconds"),
                                          pd.read_csv(run_b / "history.csv").drop(columns="seconds"))
            assert numbers(run_a / "metrics.json") == numbers(run_b / "metrics.json"), (model, fold)
            assert (run_a / "predictions.csv").read_bytes() == (run_b / "predictions.csv").read_bytes()
