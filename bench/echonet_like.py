"""Shared by the benchmarks: EchoNet-sized videos (112 x 112, MJPG AVI) made from the demo generator."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cineflow.config import DemoConfig, resolve  # noqa: E402
from cineflow.data.demo import plan, render  # noqa: E402
from cineflow.data.video_io import write_avi  # noqa: E402
from cineflow.io import write_json  # noqa: E402

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


def save(name: str, figures: dict) -> Path:
    """bench/results/<name>.json: a flat object of figures (plus where they were measured)."""
    figures = dict(figures, machine=platform.machine(), python=platform.python_version())
    assert all(not isinstance(v, (dict, list)) for v in figures.values()), "results must be flat"
    path = RESULTS / f"{name}.json"
    write_json(path, figures)
    print(json.dumps(figures, indent=2))
    return path
