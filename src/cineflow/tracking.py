"""Optional experiment tracking (TensorBoard, MLflow's local file store), in a registry.

Tracking never decides a result: a tracker whose package is missing is skipped with a warning,
and no rule reruns when tracking is switched on or off. Each (model, fold) is one MLflow run: the
train rule opens it (parameters, every validation, the checkpoint), and the evaluate, gradcam and
plots rules attach to it for the test metrics, the Grad-CAM files and the plots.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Callable, Iterator

from cineflow.config import TrackingConfig
from cineflow.registry import Registry

TRACKERS: Registry[Callable] = Registry("tracker", "tracking")
TRACKING_DIR = "results/tracking"


class Tracker:
    name = ""

    def log_params(self, params: dict) -> None: ...

    def log_epoch(self, epoch: int, values: dict) -> None: ...

    def log_metrics(self, values: dict) -> None: ...

    def log_artifacts(self, paths: list, folder: str) -> None: ...

    def close(self) -> None: ...


@TRACKERS.register
class TensorBoard(Tracker):
    name = "tensorboard"

    def __init__(self, directory: Path, run: str, attach: bool = False):
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
    """One run per (model, fold) in the experiment `cineflow`, in results/tracking/mlruns; `attach` takes
    the latest run of that name (the one its training opened) instead of starting one."""

    name = "mlflow"

    def __init__(self, directory: Path, run: str, attach: bool = False):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # the local file store is what we want
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=(directory / "mlruns").resolve().as_uri())
        experiment = self.client.get_experiment_by_name("cineflow")
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment("cineflow")
        runs = self.client.search_runs([experiment_id], filter_string=f"tags.mlflow.runName = '{run}'",
                                       order_by=["attributes.start_time DESC"], max_results=1) if attach else []
        self.run_id = runs[0].info.run_id if runs else self.client.create_run(experiment_id, run_name=run).info.run_id

    def log_params(self, params: dict) -> None:
        for key, value in sorted(params.items()):
            self.client.log_param(self.run_id, key, str(value)[:500])

    def log_epoch(self, epoch: int, values: dict) -> None:
        for key, value in values.items():
            self.client.log_metric(self.run_id, key, float(value), step=epoch)

    def log_metrics(self, values: dict) -> None:
        for key, value in values.items():  # MLflow refuses names with < or > (mae_bin_<30)
            self.client.log_metric(self.run_id, re.sub(r"[^\w\-. :/]", "_", key), float(value))

    def log_artifacts(self, paths: list, folder: str) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


@contextlib.contextmanager
def open_trackers(cfg: TrackingConfig | None, directory: str | Path, run: str, attach: bool = False
                  ) -> Iterator[list[Tracker]]:
    """The trackers switched on in `cfg` (None: none) whose package is installed; `attach`: to the run's
    existing MLflow run (a later rule adding the fold's results to it)."""
    trackers = []
    for name in TRACKERS.names():
        if cfg is None or not getattr(cfg, name):
            continue
        try:
            trackers.append(TRACKERS.get(name)(Path(directory), run, attach))
        except ImportError as err:
            print(f"tracking: {name} is switched on but not installed ({err}); continuing without it. "
                  f"pip install 'cineflow[tracking]' to use it.", file=sys.stderr)
    try:
        yield trackers
    finally:
        for tracker in trackers:
            tracker.close()


def run_name(model: str, fold: int | str) -> str:
    return f"{model}/fold_{fold}"


def log_fold_results(cfg: TrackingConfig, model: str, fold: int | str, folder: str, paths: list,
                     metrics: dict | None = None, directory: str | Path = TRACKING_DIR) -> None:
    """Add a later rule's results to the fold's run: `paths` as artifacts under `folder`, and the numbers
    among `metrics` (prefixed test_), where tracking is switched on.

    Args:
        cfg: the tracking section.
        model: the model's name.
        fold: the fold.
        folder: the artifact folder (checkpoint, test, gradcam, plots).
        paths: the files.
        metrics: scalar results, e.g. the test metrics; others are left out.
        directory: where the tracking stores live.
    """
    if not (cfg.mlflow or cfg.tensorboard):
        return
    numbers = {f"test_{k}": v for k, v in (metrics or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    with open_trackers(cfg, directory, run_name(model, fold), attach=True) as trackers:
        for tracker in trackers:
            try:
                tracker.log_metrics(numbers)
                tracker.log_artifacts([p for p in paths if Path(p).is_file()], folder)
            except Exception as err:  # the results are written already; tracking must not undo them
                print(f"tracking: {tracker.name} could not log the {folder} results ({err}); the results are in "
                      "results/ all the same", file=sys.stderr)
