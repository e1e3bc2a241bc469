"""Optional experiment tracking (TensorBoard, MLflow, Weights & Biases offline), in a registry.

Tracking never decides a result: a tracker whose package is missing is skipped with a warning, a tracker
that fails to log says so and the results stay, and no rule reruns when tracking is switched on or off.

Each (model, fold) is one run, opened by the train rule (parameters, every validation, the checkpoint); the
evaluate, gradcam and plots rules add the test metrics, the Grad-CAM files and the plots. MLflow adds them to
the training's run; an offline W&B run cannot be reopened, so there each later rule writes a run of its own in
the fold's group (job type test, gradcam, plots). The summarize rule records each model's fold ensemble as a
run `<model>/ensemble` with the mean of every metric over the folds, which MLflow registers as a new version
of the registered model `<model>`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from cineflow.config import TrackingConfig
from cineflow.registry import Registry

TRACKERS: Registry[Callable] = Registry("tracker", "tracking")
TRACKING_DIR = "results/tracking"
TRAIN = "train"  # the job that opens a fold's run; the later ones add to it


class Tracker:
    """One run of one tracker. Constructed as (directory, run, job, experiment): the stores' folder, the run's
    name (run_name), the job writing it ("train", "test", "gradcam", "plots", "ensemble") and the experiment
    (MLflow's experiment, W&B's project)."""

    name = ""

    def log_params(self, params: dict) -> None: ...

    def log_epoch(self, epoch: int, values: dict) -> None: ...

    def log_metrics(self, values: dict) -> None: ...

    def log_artifacts(self, paths: list, folder: str) -> None: ...

    def register(self, model: str, folds: list) -> None:
        """Record this (ensemble) run as a version of `model`, made of the runs of `folds`."""

    def close(self) -> None: ...


def metric_name(key: str) -> str:
    """A metric name every tracker takes: MLflow refuses < and > (mae_bin_<30), W&B reads / as a section."""
    return re.sub(r"[^\w\-. :]", "_", str(key))


@TRACKERS.register
class TensorBoard(Tracker):
    """Event files in results/tracking/tensorboard/<model>/fold_<k> (`tensorboard --logdir results/tracking/
    tensorboard`); the later rules' test metrics go to the same folder, as scalars under test/."""

    name = "tensorboard"

    def __init__(self, directory: Path, run: str, job: str = TRAIN, experiment: str = "cineflow"):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(directory) / "tensorboard" / run))

    def log_params(self, params: dict) -> None:
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in sorted(params.items())))

    def log_epoch(self, epoch: int, values: dict) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def log_metrics(self, values: dict) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"test/{key}", value, 0)

    def close(self) -> None:
        self.writer.close()


@TRACKERS.register
class MLflow(Tracker):
    """Runs in the SQLite store results/tracking/mlflow.db, artifacts in results/tracking/mlartifacts:
    `mlflow ui --backend-store-uri sqlite:///results/tracking/mlflow.db` shows them, the model registry
    included. Parallel jobs share the database through a file lock beside it (SQLite takes one writer)."""

    name = "mlflow"

    def __init__(self, directory: Path, run: str, job: str = TRAIN, experiment: str = "cineflow"):
        from filelock import FileLock
        from mlflow.tracking import MlflowClient

        directory = Path(directory).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(str(directory / "mlflow.db.lock"))
        uri = f"sqlite:///{directory / 'mlflow.db'}"
        with self.lock:
            self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(
                experiment, artifact_location=(directory / "mlartifacts").as_uri())
            runs = self._runs(run) if job not in (TRAIN, "ensemble") else []
            self.run_id = runs[0].info.run_id if runs else self.client.create_run(
                self.experiment_id, run_name=run, tags={"cineflow.job": job}).info.run_id

    def _runs(self, run: str) -> list:
        """The runs named `run`, the latest first (a resumed training leaves the killed attempt's run behind)."""
        return self.client.search_runs([self.experiment_id], filter_string=f"tags.mlflow.runName = '{run}'",
                                       order_by=["attributes.start_time DESC"], max_results=1)

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        with self.lock:
            self.client.log_batch(self.run_id, params=[Param(k, str(v)[:500]) for k, v in sorted(params.items())])

    def _log(self, values: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with self.lock:
            self.client.log_batch(self.run_id, metrics=[Metric(metric_name(k), float(v), now, step)
                                                        for k, v in values.items()])

    def log_epoch(self, epoch: int, values: dict) -> None:
        self._log(values, epoch)

    def log_metrics(self, values: dict) -> None:
        self._log(values, 0)

    def log_artifacts(self, paths: list, folder: str) -> None:
        with self.lock:
            for path in paths:
                self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def register(self, model: str, folds: list) -> None:
        from mlflow.exceptions import MlflowException

        with self.lock:
            try:
                self.client.get_registered_model(model)
            except MlflowException:
                self.client.create_registered_model(model, description="cineflow fold ensembles of this model")
            fold_runs = [r.info.run_id for fold in folds for r in self._runs(run_name(model, fold))]
            source = f"{self.client.get_run(self.run_id).info.artifact_uri}/ensemble"
            self.client.create_model_version(
                model, source, run_id=self.run_id,
                tags={"folds": ",".join(map(str, folds)), "fold_runs": ",".join(fold_runs)},
                description=f"the ensemble of folds {', '.join(map(str, folds))}: summary.json lists their "
                            "checkpoints, each also in its fold run's artifacts (checkpoint/model.pt)")

    def close(self) -> None:
        with self.lock:
            self.client.set_terminated(self.run_id)


@TRACKERS.register
class WandB(Tracker):
    """Weights & Biases in offline mode (these machines have no network): runs in results/tracking/wandb/
    offline-run-*, which `wandb sync` uploads later. W&B's own caches and artifact staging stay under
    results/tracking/wandb/.store unless WANDB_DATA_DIR, WANDB_CACHE_DIR etc. say otherwise. System metrics
    (CPU, memory, GPU) are sampled by W&B as it does online."""

    name = "wandb"

    def __init__(self, directory: Path, run: str, job: str = TRAIN, experiment: str = "cineflow"):
        import wandb

        folder = Path(directory).resolve() / "wandb"
        folder.mkdir(parents=True, exist_ok=True)
        for variable in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
            os.environ.setdefault(variable, str(folder / ".store"))
        os.environ.setdefault("WANDB_SILENT", "true")
        self.wandb, self.label = wandb, re.sub(r"[^\w\-.]", "-", run)
        self.run = wandb.init(mode="offline", dir=str(Path(directory).resolve()), project=experiment,
                              group=run.split("/")[0], name=run, job_type=job, reinit="create_new")

    def log_params(self, params: dict) -> None:
        self.run.config.update({k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
                                for k, v in params.items()}, allow_val_change=True)

    def log_epoch(self, epoch: int, values: dict) -> None:
        self.run.log({metric_name(k): v for k, v in values.items()}, step=epoch)

    def log_metrics(self, values: dict) -> None:
        self.run.summary.update({metric_name(k): v for k, v in values.items()})

    def log_artifacts(self, paths: list, folder: str) -> None:
        if not paths:
            return
        artifact = self.wandb.Artifact(f"{self.label}-{folder}", type="model" if folder == "checkpoint" else folder)
        for path in paths:
            artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def close(self) -> None:
        self.run.finish()


@contextlib.contextmanager
def open_trackers(cfg: TrackingConfig | None, directory: str | Path, run: str, job: str = TRAIN
                  ) -> Iterator[list[Tracker]]:
    """The trackers switched on in `cfg` (None: none) whose package is installed, each with its run `run` for
    `job` ("train" opens a fold's run; a later rule's job adds to it, see the module's docstring)."""
    trackers = []
    for name in TRACKERS.names():
        if cfg is None or not getattr(cfg, name):
            continue
        try:
            trackers.append(Guarded(TRACKERS.get(name)(Path(directory), run, job, cfg.experiment)))
        except ImportError as err:
            print(f"tracking: {name} is switched on but not installed ({err}); continuing without it. "
                  f"pip install 'cineflow[tracking]' to use it.", file=sys.stderr)
        except Exception as err:  # a tracker's store or service that cannot start must not stop the job
            print(f"tracking: {name} could not start ({type(err).__name__}: {err}); continuing without it",
                  file=sys.stderr)
    try:
        yield trackers
    finally:
        for tracker in trackers:
            tracker.close()


class Guarded(Tracker):
    """A tracker whose failures are reported once and end its tracking, never the job: a full disk under its
    store or a locked database must not undo a training or an evaluation."""

    def __init__(self, tracker: Tracker):
        self.tracker, self.name, self.failed = tracker, tracker.name, False

    def _call(self, method: str, *args) -> None:
        if self.failed:
            return
        try:
            getattr(self.tracker, method)(*args)
        except Exception as err:
            self.failed = True
            print(f"tracking: {self.name} failed in {method} ({type(err).__name__}: {err}); it tracks nothing more "
                  "in this job, and the results are in results/ all the same", file=sys.stderr)

    def log_params(self, params: dict) -> None:
        self._call("log_params", params)

    def log_epoch(self, epoch: int, values: dict) -> None:
        self._call("log_epoch", epoch, values)

    def log_metrics(self, values: dict) -> None:
        self._call("log_metrics", values)

    def log_artifacts(self, paths: list, folder: str) -> None:
        self._call("log_artifacts", paths, folder)

    def register(self, model: str, folds: list) -> None:
        self._call("register", model, folds)

    def close(self) -> None:
        self._call("close")


def run_name(model: str, fold: int | str) -> str:
    return f"{model}/fold_{fold}"


def numbers(metrics: dict | None, prefix: str = "") -> dict:
    """The finite scalar values among `metrics`, their names prefixed: what trackers take as metrics."""
    return {f"{prefix}{k}": float(v) for k, v in (metrics or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _log_job(cfg: TrackingConfig, run: str, job: str, folder: str, paths: list, metrics: dict,
             directory: str | Path, register: tuple | None = None) -> None:
    """Open `run` for `job` in every tracker switched on, and log `metrics`, `paths` (as artifacts under
    `folder`) and, given (model, folds), the ensemble's registration. A failing tracker is reported only
    (Guarded)."""
    if not any(getattr(cfg, name) for name in TRACKERS.names()):
        return
    with open_trackers(cfg, directory, run, job) as trackers:
        for tracker in trackers:  # Guarded: a failure is reported, the results written already stay
            tracker.log_metrics(metrics)
            tracker.log_artifacts([p for p in paths if Path(p).is_file()], folder)
            if register:
                tracker.register(*register)


def log_fold_results(cfg: TrackingConfig, model: str, fold: int | str, folder: str, paths: list,
                     metrics: dict | None = None, directory: str | Path = TRACKING_DIR) -> None:
    """Add a later rule's results to the fold's run: `paths` as artifacts under `folder`, and the numbers
    among `metrics` (prefixed test_), where tracking is switched on.

    Args:
        cfg: the tracking section.
        model: the model's name.
        fold: the fold.
        folder: the artifact folder and the job (test, gradcam, plots).
        paths: the files.
        metrics: scalar results, e.g. the test metrics; others are left out.
        directory: where the tracking stores live.
    """
    _log_job(cfg, run_name(model, fold), folder, folder, paths, numbers(metrics, "test_"), directory)


def log_ensemble(cfg: TrackingConfig, model: str, summary: dict, paths: list,
                 directory: str | Path = TRACKING_DIR) -> None:
    """Record a model's fold ensemble (the summarize rule): a run `<model>/ensemble` with the mean of each
    metric over the folds (mean_<name>) and `paths` (summary.json) as artifacts, registered by the trackers
    that keep a model registry (MLflow: a new version of `<model>` per summarize run).

    Args:
        cfg: the tracking section.
        model: the model's name.
        summary: summary.json's content (evaluate.summary.summarize).
        paths: the files that describe the ensemble.
        directory: where the tracking stores live.
    """
    means = numbers({name: m["mean"] for name, m in summary["metrics"].items()}, "mean_")
    _log_job(cfg, f"{model}/ensemble", "ensemble", "ensemble", paths, means, directory,
             register=(model, [str(f) for f in summary["folds"]]))
