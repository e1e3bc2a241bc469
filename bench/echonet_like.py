"""Shared by the benchmarks: EchoNet-sized videos (112 x 112, MJPG AVI) made from the demo generator."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cineflow.config import DemoConfig, resolve  # noqa: E402
from cineflow.data.demo import plan, render  # noqa: E402
from cineflow.data.video_io import write_avi  # noqa: E402
from cineflow.io import write_json  # noqa: E402
from cineflow.provenance import source_hash  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def make_videos(folder: Path, n_videos: int = 32, n_frames: int = 128, size: int = 112, seed: int = 0,
                only: slice = slice(None)) -> list[Path]:
    """RGB AVIs as EchoNet-Dynamic ships them (3 channels, 112 x 112, MJPG); `only` the videos of that slice
    of the set (so processes can share the work)."""
    cfg = DemoConfig.from_dict(resolve({"demo": {"n_patients": n_videos, "clips_per_patient": 1, "hflip_fraction": 0,
                                                  "n_frames": n_frames, "size": size, "n_corrupt": 0}})["demo"])
    paths = []
    rows = list(plan(cfg, seed, ["NORMAL", "REDUCED"]).iterrows())
    for i, (_, row) in list(enumerate(rows))[only]:
        path = folder / f"video_{i:03d}.avi"
        if not path.exists():
            write_avi(path, np.repeat(render(row, cfg)[..., None], 3, -1), 50)
        paths.append(path)
    return paths


def interleaved(tasks: dict[str, Callable[[], float | None]], rounds: int = 3) -> dict[str, list[float]]:
    """Seconds of each task in each of `rounds` rounds, after one untimed warm-up call of each (imports, page
    cache, allocator, codec start-up). Rounds are interleaved (every task once per round) so that a drift
    in this machine's speed hits every task alike. A task may return its own seconds (what it timed inside)
    or None to be timed whole."""
    for task in tasks.values():
        task()
    seconds: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, task in tasks.items():
            tic = time.perf_counter()
            own = task()
            seconds[name].append(own if own is not None else time.perf_counter() - tic)
    return seconds


def median_spread(key: str, values: list[float], digits: int = 3, scale: float = 1.0) -> dict[str, float]:
    """{key: the median of `values` × scale, key_spread: (max - min) / median over the rounds}."""
    values = np.asarray(values, dtype=float) * scale
    median = float(np.median(values))
    return {key: round(median, digits),
            f"{key}_spread": round(float((values.max() - values.min()) / median), 3) if median else 0.0}


def code() -> str:
    """The commit, "-dirty" when files other than bench/results differ from it (earlier benchmarks of the same
    `make bench` write there), and the hash of src/cineflow."""
    repo = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "nogit"
    dirty = git("status", "--porcelain", "--", ".", ":(exclude)bench/results")
    return f"{commit}{'-dirty' if dirty else ''}+src.{source_hash()}"


def save(name: str, figures: dict) -> Path:
    """bench/results/<name>.json: a flat object of figures, plus where and from which code they were measured
    (the commit and a hash of src/cineflow, as every result file records)."""
    figures = dict(figures, machine=platform.machine(), python=platform.python_version(), code=code(),
                   command=f"make bench ({name}.py)")
    assert all(not isinstance(v, (dict, list)) for v in figures.values()), "results must be flat"
    path = RESULTS / f"{name}.json"
    write_json(path, figures)
    print(json.dumps(figures, indent=2))
    return path
