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
    """Progress of one fold at its last validation.

    The weights (and their moving average), optimizer, scheduler and loss scaler are saved from and restored into
    the live objects, together with the CPU and every CUDA generator's RNG state, so dropout and sampling
    after a resume draw what an uninterrupted run would have drawn. A validation can fall inside an
    epoch (val_every_steps): `step` then says how many of the epoch's batches are done, and the rest of
    the epoch, whose batches and augmentation depend only on the seed, epoch and step, follows."""

    key: str
    epoch: int = 0  # the epoch in progress (or next)
    step: int = 0  # batches of it done
    updates: int = 0  # optimizer updates so far, over all stages
    stage: int = 0  # the stage in progress
    stage_start: int = 0  # the epoch it started at
    stage_updates: int = 0  # optimizer updates in it
    epoch_metric: float | None = None  # the epoch's latest validation value of stop_on (for the plateau scheduler)
    history: list[dict] = field(default_factory=list)
    best_score: float | None = None  # of the selection metric
    best_monitor: str | None = None  # which metric best_score is of
    best_state: dict | None = None
    best_row: int = -1  # the history row of the best checkpoint
    best_stop: float | None = None  # of the stopping metric, in this stage
    bad: int = 0  # validations without improvement of it, in this stage

    def save(self, path: str | Path, model, optimizer, schedule, scaler, ema=None) -> None:
        """Write the state with the live objects' own states, atomically.

        Args:
            path: the resume file (outside the rule's outputs).
            model: the plain module (not a DDP or compiled wrapper).
            optimizer: the stage's optimizer.
            schedule: its learning-rate schedule (optim.Schedule).
            scaler: the loss scaler (precision.Precision.scaler).
            ema: the weights' moving average (timm's ModelEmaV3), or None.
        """
        payload = {**{f.name: getattr(self, f.name) for f in fields(self)}, "model": model.state_dict(),
                   "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                   "scaler": scaler.state_dict(), "rng": torch.get_rng_state(),
                   "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                   "ema": None if ema is None else ema.module.state_dict()}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path, key: str, model, ema=None) -> tuple["ResumeState", dict | None]:
        """The saved state, with the weights restored into `model`, and the saved optimizer, scheduler,
        scaler and RNG states for `restore` once the stage's optimizer is built; a fresh state and None
        when there is none, it is unreadable (cut short by the kill itself) or its key differs.

        Args:
            path: the resume file.
            key: what the state must have been saved for (a hash of config, code, data and processes).
            model: restored in place.
            ema: the weights' moving average, restored in place (None: there is none).
        """
        path = Path(path)
        if not path.is_file():
            return cls(key), None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            print(f"ignoring unreadable resume state {path}: {err}", file=sys.stderr)
            return cls(key), None
        if saved.get("key") != key:
            print(f"config or code changed since {path} was written: training from scratch", file=sys.stderr)
            return cls(key), None
        model.load_state_dict(saved["model"])
        if ema is not None:
            ema.module.load_state_dict(saved["ema"])
        inside = f" and {saved['step']} batches of the next" if saved["step"] else ""
        print(f"resuming from epoch {saved['epoch']}{inside}, stage {saved['stage'] + 1} (state {path})",
              file=sys.stderr, flush=True)
        return cls(**{f.name: saved[f.name] for f in fields(cls)}), saved

    @staticmethod
    def restore(saved: dict, optimizer, schedule, scaler) -> None:
        """Load the saved optimizer, scheduler, scaler and RNG states (from `load`) into the live objects;
        optimizer and schedule None when the state was saved at the end of a stage and the next one starts
        afresh."""
        if optimizer is not None:
            optimizer.load_state_dict(saved["optimizer"])
            schedule.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["rng"])
        if saved["cuda_rng"] and torch.cuda.is_available() and len(saved["cuda_rng"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
