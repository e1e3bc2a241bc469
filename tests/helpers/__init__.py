"""Test helpers: the tiny config, typed config sections, Snakemake's job counts. Files are made by
`helpers.media`, workflows are run by `helpers.workflow`."""

from __future__ import annotations

import sys
from pathlib import Path

from cineflow.config import section

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

TINY = {
    "seed": 3,
    "data": {"subgroups": ["site", "sex"]},
    "demo": {"n_patients": 16, "clips_per_patient": 1, "hflip_fraction": 0.3, "n_frames": 16, "size": 32,
             "n_corrupt": 1},
    "cache": {"shards": 2, "size": 24},
    "splits": {"folds": 2, "val_fraction": 0.25},
    "models": {"tiny": {"arch": "tiny3d", "arch_params": {"width": 4}, "clip_length": 8, "clip_period": 1,
                        "epochs": 1, "batch_size": 4,
                        "augment": {"hflip": {"p": 0.5}, "brightness": {"p": 0.5}, "rotation": {"p": 0.3},
                                    "frame_mask": {"p": 0.3}}}},
    "evaluate": {"eval_clips": 2, "bootstrap": 100},
    "gradcam": {"n_videos": 1},
    "resources": {"train_threads": 1},
}


settings = section  # a typed config section with the schema's defaults and overrides


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table Snakemake prints for a (dry) run."""
    counts, inside = {}, False
    for line in output.splitlines():
        if line.startswith("Job stats:"):
            inside = True
            continue
        parts = line.split()
        if inside and len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            counts[parts[0]] = int(parts[1])
    return counts
