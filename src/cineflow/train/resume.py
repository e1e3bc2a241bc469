"""What a killed training job needs to go on exactly where it stopped.

The state lives outside Snakemake's declared outputs (Snakemake deletes those before a rerun) and
carries a key: a hash of everything that determines the result, so a changed config, code, split
or process count starts over instead of resuming into a different experiment.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from cineflow.io import atomic_path


@dataclass
class ResumeState:
    """Progress of one fold after its last finished epoch.

    The weights, optimizer, scheduler and loss scaler are saved from and restored into the live
    objects, together with the CPU and every CUDA generator's RNG state, so dropout and sampling
    after a resume draw what an uninterrupted run would have drawn."""

    key: str
    epoch: int = -1  # the last finished epoch; -1 before the first
    history: list[dict] = field(default_factory=list)
    best_score: float | None = None
    best_state: dict | None = None
    best_epoch: int = -1
    bad_epochs: int = 0

    @property
    def next_epoch(self) -> int:
        return self.epoch + 1

    def save(self, path: str | Path, model, optimizer, scheduler, scaler) -> None:
        """Write the state with the live objects' own states, atomically.

        Args:
            path: the resume file (outside the rule's outputs).
            model: the plain module (not a DDP or compiled wrapper).
            optimizer: its optimizer.
            scheduler: its learning-rate scheduler.
            scaler: the loss scaler (precision.Precision.scaler).
        """
        payload = {**{f.name: getattr(self, f.name) for f in fields(self)}, "model": model.state_dict(),
                   "optimizer": optimizer.state_dict(),
                   "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                   "rng": torch.get_rng_state(),
                   "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path, key: str, model, optimizer, scheduler, scaler) -> "ResumeState":
        """The saved state restored into the objects; a fresh state when there is none, it is unreadable
        (cut short by the kill itself) or its key differs.

        Args:
            path: the resume file.
            key: what the state must have been saved for (a hash of config, code, data and processes).
            model: restored in place.
            optimizer: restored in place.
            scheduler: restored in place.
            scaler: restored in place.
        """
        path = Path(path)
        if not path.is_file():
            return cls(key)
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            print(f"ignoring unreadable resume state {path}: {err}", file=sys.stderr)
            return cls(key)
        if saved.get("key") != key:
            print(f"config or code changed since {path} was written: training from scratch", file=sys.stderr)
            return cls(key)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["rng"])
        if saved["cuda_rng"] and torch.cuda.is_available() and len(saved["cuda_rng"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        print(f"resuming from epoch {saved['epoch'] + 1} (state {path})", file=sys.stderr, flush=True)
        return cls(**{f.name: saved[f.name] for f in fields(cls)})
