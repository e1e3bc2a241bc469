"""Optional experiment tracking (TensorBoard, MLflow's local file store), in a registry.

Tracking never decides a result: a tracker whose package is missing is skipped with a warning,
and the train rule does not rerun when tracking is switched on or off.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

from cineflow.config import TrackingConfig
from cineflow.registry import Registry

TRACKERS: Registry[Callable] = Registry("tracker", "tracking")


class Tracker:
    name = ""

    def log_params(self, params: dict) -> None: ...

    def log_epoch(self, epoch: int, values: dict) -> None: ...

    def close(self) -> None: ...


@TRACKERS.register
class TensorBoard(Tracker):
    name = "tensorboard"

    def __init__(self, directory: Path, run: str):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(directory / "tensorboard" / run))

    def log_params(self, params: dict) -> None:
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in sorted(params.items())))

    def log_epoch(self, epoch: int, values: dict) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


@TRACKERS.register
class MLflow(Tracker):
    """One run per (model, fold) in the experiment `cineflow`, in results/tracking/mlruns."""

    name = "mlflow"

    def __init__(self, directory: Path, run: str):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # the local file store is what we want
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=(directory / "mlruns").resolve().as_uri())
        experiment = self.client.get_experiment_by_name("cineflow")
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment("cineflow")
        self.run_id = self.client.create_run(experiment_id, run_name=run).info.run_id

    def log_params(self, params: dict) -> None:
        for key, value in sorted(params.items()):
            self.client.log_param(self.run_id, key, str(value)[:500])

    def log_epoch(self, epoch: int, values: dict) -> None:
        for key, value in values.items():
            self.client.log_metric(self.run_id, key, float(value), step=epoch)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


@contextlib.contextmanager
def open_trackers(cfg: TrackingConfig, directory: str | Path, run: str) -> Iterator[list[Tracker]]:
    """The trackers switched on in `cfg` whose package is installed."""
    trackers = []
    for name in TRACKERS.names():
        if not getattr(cfg, name):
            continue
        try:
            trackers.append(TRACKERS.get(name)(Path(directory), run))
        except ImportError as err:
            print(f"tracking: {name} is switched on but not installed ({err}); continuing without it. "
                  f"pip install 'cineflow[tracking]' to use it.", file=sys.stderr)
    try:
        yield trackers
    finally:
        for tracker in trackers:
            tracker.close()
