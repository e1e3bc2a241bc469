"""Snakemake's own overhead with many videos (tiny files, one per patient): EchoNet-Dynamic's 10,030
and ten times that.

Figures: dry_run_s_<n> (`snakemake -n` before anything ran), and at 100,000 noop_s_100000 (`snakemake`
when everything is up to date) and noop_dry_run_s_100000; targets <= 30 s at 100,000. The full run's
time is there for context (2 cores), measured once (it changes what the others measure). The others are
medians of 3 interleaved rounds after a warm-up call each, with their `_spread`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from echonet_like import interleaved, median_spread, save

from cineflow.data.video_io import write_avi

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SIZES = (10_030, 100_000)  # EchoNet-Dynamic's size, and ten times it
ROUNDS = 3

CONFIG = {
    "seed": 1,
    "data": {"layout": "table", "root": "data", "labels": "data/labels.csv", "classes": ["NORMAL", "REDUCED"]},
    "cache": {"shards": 8, "size": 16},
    "splits": {"folds": 3},
    "models": {"tiny": {"arch": "tiny3d", "arch_params": {"width": 2}, "clip_length": 4, "clip_period": 1,
                        "epochs": 1, "batch_size": 64}},
    "evaluate": {"eval_clips": 1, "block": 256},
    "gradcam": {"n_videos": 1},
}


def make_dataset(root: Path, n_videos: int) -> None:
    """Tiny AVIs (4 frames of 16 x 16): the DAG's cost depends on the count, not the pixels."""
    rng = np.random.default_rng(0)
    rows = []
    for label, level in (("NORMAL", 80), ("REDUCED", 160)):  # one file per class, copied 10,030 times
        frames = np.clip(rng.normal(level, 20, (4, 16, 16)), 0, 255).astype(np.uint8)
        write_avi(root / f"{label}.avi", frames, 25)
    (root / "videos").mkdir(parents=True)
    for i in range(n_videos):
        label = "REDUCED" if i % 3 == 0 else "NORMAL"
        # a file each, the bytes once: hard links, to a fresh copy every 50,000 (a file takes ~65,000 links)
        source = root / f"{label}_{i // 50_000}.avi"
        if not source.exists():
            shutil.copyfile(root / f"{label}.avi", source)
        os.link(source, root / "videos" / f"v{i:06d}.avi")
        rows.append({"path": f"videos/v{i:06d}.avi", "label": label, "group": f"patient{i:06d}", "ef": 40.0})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)


def timed(workdir: Path, *args: str) -> tuple[float, str]:
    tic = time.perf_counter()
    out = subprocess.run([SNAKEMAKE, *args, "--cores", "2", "--resources", "gpu=1"], cwd=workdir,
                         capture_output=True, text=True)
    seconds = time.perf_counter() - tic
    if out.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{out.stderr[-4000:]}")
    return seconds, out.stdout + out.stderr


def workflow(n_videos: int) -> Path:
    """A copy of the workflow with the benchmark's config and `n_videos` videos."""
    work = Path(tempfile.mkdtemp(prefix=f"cineflow_bench_dag_{n_videos}_"))
    for name in ("Snakefile", "rules", "scripts", "src", "envs"):
        source = REPO / name
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        kwargs = {"symlinks": True, "ignore": shutil.ignore_patterns("__pycache__")} if source.is_dir() else {}
        copy(source, work / name, **kwargs)
    (work / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    make_dataset(work / "data", n_videos)
    return work


def main() -> None:
    works = {n: workflow(n) for n in SIZES}
    # before anything ran: the dry runs of both sizes, interleaved
    seconds = interleaved({f"dry_run_s_{n}": partial(dry_run, work) for n, work in works.items()}, ROUNDS)
    n, work = max(SIZES), works[max(SIZES)]
    figures = {f"full_run_s_{n}": round(timed(work)[0], 1)}  # once: it changes what the others measure
    seconds.update(interleaved({f"noop_s_{n}": partial(noop, work), f"noop_dry_run_s_{n}": partial(dry_run, work)},
                               ROUNDS))
    for key, values in seconds.items():
        figures.update(median_spread(key, values, 2))
    for work in works.values():
        shutil.rmtree(work, ignore_errors=True)
    save("dag", {**figures, "rounds": ROUNDS, "cache_shards": CONFIG["cache"]["shards"], "cores": 2})


def dry_run(work: Path) -> float:
    return timed(work, "-n")[0]


def noop(work: Path) -> float:
    seconds, log = timed(work)
    assert "Nothing to be done" in log, log[-2000:]
    return seconds


if __name__ == "__main__":
    main()
