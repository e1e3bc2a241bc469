"""Snakemake's own overhead on an EchoNet-sized dataset: 10,030 videos (tiny files, one per patient).

Figures: dry_run_s_10030 (`snakemake -n` before anything ran; target <= 10 s) and noop_s_10030
(`snakemake` when everything is up to date; target <= 15 s), plus the full run's time for context.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from echonet_like import save

from cineflow.video_io import write_avi

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
N_VIDEOS = 10_030  # EchoNet-Dynamic's size

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


def make_dataset(root: Path) -> None:
    """10,030 tiny AVIs (4 frames of 16 x 16): the DAG's cost depends on the count, not the pixels."""
    rng = np.random.default_rng(0)
    rows = []
    for label, level in (("NORMAL", 80), ("REDUCED", 160)):  # one file per class, copied 10,030 times
        frames = np.clip(rng.normal(level, 20, (4, 16, 16)), 0, 255).astype(np.uint8)
        write_avi(root / f"{label}.avi", frames, 25)
    (root / "videos").mkdir(parents=True)
    for i in range(N_VIDEOS):
        label = "REDUCED" if i % 3 == 0 else "NORMAL"
        shutil.copyfile(root / f"{label}.avi", root / "videos" / f"v{i:05d}.avi")
        rows.append({"path": f"videos/v{i:05d}.avi", "label": label, "group": f"patient{i:05d}", "ef": 40.0})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)


def timed(workdir: Path, *args: str) -> tuple[float, str]:
    tic = time.perf_counter()
    out = subprocess.run([SNAKEMAKE, *args, "--cores", "2", "--resources", "gpu=1"], cwd=workdir,
                         capture_output=True, text=True)
    seconds = time.perf_counter() - tic
    if out.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{out.stderr[-4000:]}")
    return seconds, out.stdout + out.stderr


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cineflow_bench_dag_"))
    for name in ("Snakefile", "rules", "scripts", "schemas", "src", "envs"):
        source = REPO / name
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        kwargs = {"symlinks": True, "ignore": shutil.ignore_patterns("__pycache__")} if source.is_dir() else {}
        copy(source, work / name, **kwargs)
    (work / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    make_dataset(work / "data")

    dry, _ = timed(work, "-n")
    full, _ = timed(work)
    noop, log = timed(work)
    assert "Nothing to be done" in log, log[-2000:]
    noop_dry, log = timed(work, "-n")
    assert "Nothing to be done" in log, log[-2000:]
    save("dag", {
        "dry_run_s_10030": round(dry, 2),
        "noop_s_10030": round(noop, 2),
        "noop_dry_run_s_10030": round(noop_dry, 2),
        "full_run_s_10030": round(full, 1),
        "n_videos": N_VIDEOS, "cache_shards": CONFIG["cache"]["shards"],
    })
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
