"""Training one fold in named steps, as nnU-Net names them: `setup` builds what the config names (the
phase that decides every random draw before training); a `StageRunner` runs the stages (each with its own
optimizer, schedule and trainable part), owns stage changes, early stopping on a val metric and the resume
state saved at every validation (train.resume: after every epoch, or every val_every_steps updates); the
epoch itself is train.loop's; `finish` keeps the best weights as the fold's TrainedModel."""

from __future__ import annotations

import copy
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel

from cineflow.config import ModelConfig, Stage, model_stages
from cineflow.data.augment import augmentations
from cineflow.data.clips import ClipDataset, Prepare
from cineflow.data.normalisation import model_normalisation
from cineflow.data.splits import fold_rows
from cineflow.data.store import video_frames
from cineflow.io import write_csv
from cineflow.models.architectures import build_model, init_output_bias, stem_channels
from cineflow.models.losses import LOSSES, build_loss, n_outputs
from cineflow.models.trained import TrainedModel, preprocess_of
from cineflow.provenance import config_hash, file_sha256, source_hash
from cineflow.tasks import Task, task_for
from cineflow.tasks.metrics import LOWER_IS_BETTER, is_better
from cineflow.train import distributed
from cineflow.train.batching import epoch_batches
from cineflow.train.cams import TrainingCams, publish
from cineflow.train.loop import (
    EpochBuffers,
    compiled,
    loader_workers,
    to_channels_last,
    train_one_epoch,
    training_loader,
    validate,
)
from cineflow.train.optim import Schedule, apply_trainable, build_optimizer, build_scheduler
from cineflow.train.precision import Precision
from cineflow.train.resume import ResumeState


@dataclass(frozen=True)
class FoldPaths:
    """Where one fold's training writes: the best and the last checkpoint, the per-epoch history, the
    resume state (kept outside the rule's outputs) and the Grad-CAMs drawn during training (None: not wanted;
    models.<name>.gradcam_every)."""

    model: str
    last: str
    history: str
    state: str
    cams: str | None = None

    @property
    def cams_staging(self) -> Path:
        """Where the CAMs are drawn until the fold finishes: beside the resume state, which a rerun keeps."""
        return Path(self.state).parent / "training_gradcam"


def model_task(cfg: ModelConfig, classes: list[str]) -> tuple[Task, str, str]:
    """(task, loss name, monitor) with the task's defaults filled in, checked against each other."""
    task = task_for(cfg.task, cfg.target, classes)
    loss, monitor = cfg.loss or task.default_loss, cfg.monitor or task.default_monitor
    task.check(loss, LOSSES.meta(loss)["task"], monitor, "models/<name>")
    return task, loss, monitor


def validation_interval(cfg: ModelConfig) -> int | None:
    """Optimizer updates between validations: val_every_steps in updates, or its batches rounded to whole updates
    (at least one); None: after every epoch."""
    if cfg.val_every_steps is None:
        return None
    if cfg.val_every_unit == "batches":
        return max(1, round(cfg.val_every_steps / cfg.accumulate))
    return cfg.val_every_steps


def chunk_end(step: int, n_steps: int, updates: int, every: int | None, accumulate: int) -> int:
    """Where the batches from `step` on stop for the next validation: the end of the epoch, or the batch
    whose update makes the run's update count a multiple of `every` (val_every_steps).

    Args:
        step: the first batch of the chunk (a multiple of `accumulate`).
        n_steps: batches in the epoch (of this process).
        updates: optimizer updates so far.
        every: updates between validations (validation_interval), or None (validation after every epoch).
        accumulate: batches per update.
    """
    if every is None:
        return n_steps
    return min(n_steps, step + (every - updates % every) * accumulate)


def record(state: ResumeState, row: dict, scores: dict, stage: Stage, model: torch.nn.Module) -> bool:
    """Add a validation to the history: keep the weights when the selection metric (`monitor`) improves,
    count the validations without improvement of the stopping metric (`stop_on`). Returns whether the
    weights were kept.

    Scores of different selection metrics cannot be compared: a stage that selects on another metric
    than the best checkpoint's starts the selection anew.

    Args:
        state: the run's state, updated in place.
        row: the history row.
        scores: the validation's metrics ("loss" included).
        stage: the stage in progress.
        model: whose weights are kept.
    """
    state.history.append(row)
    if state.best_monitor != stage.monitor:
        state.best_score, state.best_monitor = None, stage.monitor
    improved = is_better(stage.monitor, scores[stage.monitor], state.best_score)
    if improved:
        state.best_score, state.best_row = scores[stage.monitor], len(state.history) - 1
        state.best_state = copy.deepcopy(model.state_dict())
    state.epoch_metric = scores[stage.stop_on]
    if is_better(stage.stop_on, scores[stage.stop_on], state.best_stop):
        state.best_stop, state.bad = scores[stage.stop_on], 0
    else:
        state.bad += 1
    return improved


@dataclass
class Fold:
    """What one fold's stages train with, built once by `setup`."""

    cfg: ModelConfig
    record: TrainedModel  # what the checkpoints will say about the weights (no module)
    stages: list[Stage]
    model: torch.nn.Module  # the plain module: its weights are the checkpoint's
    forward: torch.nn.Module  # what the batches go through: the module, in DDP and/or compiled
    criterion: torch.nn.Module
    precision: Precision
    train_ds: ClipDataset
    prepare: Prepare
    workers: int
    batch_targets: np.ndarray
    updates_per_epoch: int
    val_every: int | None  # validate every this many updates (val_every_steps in its unit), None: every epoch
    val_rows: pd.DataFrame
    y_val: np.ndarray
    group: distributed.Group
    seed: int
    device: torch.device
    ema: torch.nn.Module | None = None  # timm's ModelEmaV3 of the model (models.<name>.ema), or None

    @property
    def scored(self) -> torch.nn.Module:
        """The weights validation scores and the checkpoints keep: the moving average where there is one."""
        return self.model if self.ema is None else self.ema.module


def setup(cfg: ModelConfig, classes: list[str], train_rows: pd.DataFrame, val_rows: pd.DataFrame,
          manifest: pd.DataFrame, norm: dict | None, seed: int, device: torch.device, workers: int | str,
          provenance: dict | None) -> Fold:
    """Build the fold's model, loss, data and schedule from the config, in the order that fixes every random
    draw (the weights are initialised right after the seed).

    Args: as for `train_fold`; `train_rows` and `val_rows` are the fold's partitions of the manifest.
    """
    group = distributed.group()
    task, loss_name, monitor = model_task(cfg, classes)
    stages = model_stages(cfg, monitor)
    for stage in stages:
        for metric in (stage.monitor, stage.stop_on):
            task.check(loss_name, LOSSES.meta(loss_name)["task"], metric, "models/<name>/stages")
    channels = int(manifest["channels"].iloc[0])
    norm = model_normalisation(cfg.normalise, channels, norm)
    record = TrainedModel(
        spec=cfg, task=task, loss=loss_name, output=LOSSES.meta(loss_name)["output"], monitor=monitor,
        n_outputs=n_outputs(loss_name, len(classes)), in_channels=stem_channels(channels, cfg.pretrained, cfg.weights),
        # the cached clips' size (the manifest's height and width are the source's)
        input_size=(cfg.clip_length, *map(int, video_frames(train_rows.iloc[0]).shape[1:3])),
        normalisation=norm, preprocess=preprocess_of(manifest), provenance=provenance or {},
        base_weights=({"path": cfg.weights, "sha256": file_sha256(cfg.weights)} if cfg.adapter and cfg.weights
                      else None))
    y_train = task.targets(train_rows)
    train_ds = ClipDataset(train_rows, y_train, record.clip_spec, seed=seed)
    prepare = Prepare(norm["mean"], norm["std"], augmentations(cfg.augment), seed)
    torch.manual_seed(seed)
    model = build_model(cfg.arch, record.n_outputs, record.in_channels, cfg.pretrained, cfg.weights,
                        record.input_size, weights_strict=cfg.weights_strict, fuse_directions=cfg.fuse_directions,
                        fuse_params=cfg.fuse_params, adapter=cfg.adapter, **cfg.arch_params)
    bias = cfg.output_bias if cfg.output_bias is not None else task.output_bias(y_train)
    if bias is not None:
        init_output_bias(model, bias)
    if cfg.channels_last:
        to_channels_last(model)
    model.to(device)
    forward = model
    if group.world > 1:
        # built while every parameter trains, so that parameters unfrozen later are synchronised too; in
        # the frozen epochs they get no gradient, which DDP must be told to expect
        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                          find_unused_parameters=any(s.train != "all" for s in stages))
    batch_targets = task.batch_targets(y_train)
    steps = len(group.equal_share(len(epoch_batches(cfg.sampler, batch_targets, cfg.batch_size, seed, 0))))
    return Fold(cfg=cfg, record=record, stages=stages, model=model, forward=compiled(forward, cfg.compile),
                criterion=build_loss(loss_name, len(classes), y_train, **cfg.loss_params).to(device),
                precision=Precision(cfg.amp, device), train_ds=train_ds, prepare=prepare,
                workers=loader_workers(workers, device), batch_targets=batch_targets,
                updates_per_epoch=-(-steps // cfg.accumulate), val_every=validation_interval(cfg),
                val_rows=val_rows, y_val=task.targets(val_rows),
                group=group, seed=seed, device=device, ema=weight_average(model, cfg.ema))


def weight_average(model: torch.nn.Module, spec: dict | None):
    """timm's ModelEmaV3 of `model` (a copy that follows its weights after every update), or None."""
    if not spec:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=spec["decay"], use_warmup=spec["warmup"])


def resume_key(fold: Fold, train_rows: pd.DataFrame) -> str:
    """What a resume state must have been saved for: config, classes, seed, code, normalisation, process
    count and the fold's videos (a changed one trains afresh)."""
    norm = fold.record.normalisation
    return config_hash({"model": asdict(fold.cfg), "classes": fold.record.classes, "seed": fold.seed,
                        "code": source_hash(), "norm": [norm["mean"], norm["std"]], "processes": fold.group.world,
                        "train": train_rows["video_id"].tolist(), "val": fold.val_rows["video_id"].tolist()})


@dataclass
class _Meter:
    """The training loss and time since the last validation."""

    tic: float
    loss_sum: float = 0.0
    loss_n: int = 0


class StageRunner:
    """Runs a fold's stages from its resume state: the stage in progress, its optimizer and schedule, early
    stopping, validations and the resume file. One instance per training job.

    Args:
        fold: what `setup` built.
        state: the run's progress (fresh, or loaded by ResumeState.load), updated in place.
        saved: the loaded resume file's optimizer, scheduler, scaler and RNG states, restored when the stage
            they belong to starts; None for a fresh run.
        state_path: where the resume state is saved at every validation.
        trackers: told every validation.
        cams: the Grad-CAMs drawn during training (models.<name>.gradcam_every), or None.
    """

    def __init__(self, fold: Fold, state: ResumeState, saved: dict | None, state_path: str,
                 trackers: list = (), cams: TrainingCams | None = None):
        self.fold, self.state, self.saved, self.state_path, self.trackers = fold, state, saved, state_path, trackers
        self.optimizer = self.schedule = None
        self.cams, self.buffers = cams, EpochBuffers()

    def run(self) -> None:
        """Every stage to its end or its early stop."""
        stages = self.fold.stages
        while self.state.stage < len(stages):
            stage = stages[self.state.stage]
            if self._over(stage):
                self._next_stage()
                continue
            if self.optimizer is None:
                self._start(stage)
            self._epoch(stage)

    def _over(self, stage: Stage) -> bool:
        state = self.state
        stopped = bool(stage.patience) and state.bad >= stage.patience
        if stopped:
            print(f"stage {state.stage + 1}: no better val {stage.stop_on} for {state.bad} validations",
                  file=sys.stderr, flush=True)
        return stopped or state.epoch - state.stage_start >= stage.epochs

    def _next_stage(self) -> None:
        state = self.state
        state.epoch += bool(state.step)  # stopped inside an epoch: the next stage starts with the next one
        state.step, state.epoch_metric = 0, None
        state.stage, state.stage_start, state.stage_updates, state.best_stop, state.bad = (
            state.stage + 1, state.epoch, 0, None, 0)
        self.optimizer = None
        if self.saved is not None:  # saved at the end of the stage: the next one starts with a new optimizer
            ResumeState.restore(self.saved, None, None, self.fold.precision.scaler)
            self.saved = None

    def _start(self, stage: Stage) -> None:
        """The stage's optimizer and schedule, with the resume file's states when it was saved in this stage."""
        fold = self.fold
        self.optimizer = build_optimizer(fold.model, stage)
        self.schedule = Schedule(build_scheduler(self.optimizer, stage, fold.updates_per_epoch,
                                                 lower_is_better=stage.stop_on in LOWER_IS_BETTER))
        print(f"stage {self.state.stage + 1}/{len(fold.stages)}: {stage.epochs} epochs, {stage.optimizer} lr "
              f"{stage.lr:g}{f' (backbone {stage.backbone_lr:g})' if stage.backbone_lr else ''}, {stage.scheduler}",
              file=sys.stderr, flush=True)
        if self.saved is not None:
            ResumeState.restore(self.saved, self.optimizer, self.schedule, self.fold.precision.scaler)
            self.saved = None

    def _updated(self) -> None:
        state = self.state
        state.updates, state.stage_updates = state.updates + 1, state.stage_updates + 1
        self.schedule.update(state.stage_updates)
        if self.fold.ema is not None:
            self.fold.ema.update(self.fold.model, step=state.updates)

    def _epoch(self, stage: Stage) -> None:
        """The rest of the epoch in progress, in chunks that end at each validation (val_every_steps)."""
        fold, state, cfg = self.fold, self.state, self.fold.cfg
        in_stage = state.epoch - state.stage_start
        meter = _Meter(time.time())
        fold.train_ds.set_epoch(state.epoch)
        batches = epoch_batches(cfg.sampler, fold.batch_targets, cfg.batch_size, fold.seed, state.epoch)
        steps = fold.group.equal_share(len(batches)).tolist()  # all of them in a single process
        epoch_done = False
        while not epoch_done:
            fold.model.train()  # again after every validation, which leaves the model in eval mode
            trains = apply_trainable(fold.model, stage, in_stage)
            start, stop = state.step, chunk_end(state.step, len(steps), state.updates, fold.val_every,
                                                cfg.accumulate)
            loader = training_loader(fold.train_ds, batches, fold.workers, fold.device, steps[start:stop],
                                     self.buffers)
            meter.loss_sum += (stop - start) * fold.group.mean(train_one_epoch(
                fold.forward, loader, fold.criterion, self.optimizer, fold.precision, fold.device, fold.prepare,
                state.epoch, accumulate=cfg.accumulate, clip_grad_norm=cfg.clip_grad_norm,
                channels_last=cfg.channels_last, desc=f"stage {state.stage + 1} epoch {in_stage + 1}/{stage.epochs}",
                on_update=self._updated, buffers=self.buffers))
            meter.loss_n += stop - start
            state.step = stop
            epoch_done = stop == len(steps)
            due = (fold.val_every is None and epoch_done) or (epoch_done and in_stage + 1 == stage.epochs) or (
                fold.val_every is not None and state.updates % fold.val_every == 0)
            if due:
                self._validation(stage, trains, epoch_done, len(steps), meter)
            if epoch_done:
                self.schedule.epoch(in_stage + 1, state.epoch_metric)
                if self.cams is not None and self.cams.due(state.epoch + 1):
                    self.cams.render(fold.scored, state.epoch + 1)
                state.epoch, state.step, state.epoch_metric = state.epoch + 1, 0, None
            if due:
                if fold.group.main:
                    state.save(self.state_path, fold.model, self.optimizer, self.schedule, fold.precision.scaler,
                               fold.ema)
                if stage.patience and state.bad >= stage.patience:
                    return

    def _validation(self, stage: Stage, trains: str, epoch_done: bool, n_steps: int, meter: _Meter) -> None:
        """Score the val videos, add the history row, keep the weights when they are the best, tell the trackers."""
        fold, state = self.fold, self.state
        fold.group.same_buffers(fold.model)
        record_ = fold.record
        scores = validate(fold.scored, fold.val_rows, fold.y_val, record_.task, record_.normalisation,
                          record_.clip_spec, fold.device, fold.cfg.batch_size, record_.output, fold.group)
        row = {"epoch": state.epoch + 1 if epoch_done else round(state.epoch + state.step / n_steps, 3),
               "step": state.updates, "stage": state.stage + 1, "trains": trains,
               "train_loss": meter.loss_sum / max(1, meter.loss_n), "val_loss": scores["loss"],
               **{f"val_{k}": v for k, v in scores.items() if k != "loss"},
               "lr": self.optimizer.param_groups[-1]["lr"], "seconds": round(time.time() - meter.tic, 3)}
        improved = record(state, row, scores, stage, fold.scored)
        for tracker in self.trackers:
            tracker.log_epoch(len(state.history), {k: v for k, v in row.items() if isinstance(v, float)})
        print(f"epoch {row['epoch']} step {state.updates} ({trains}): train_loss={row['train_loss']:.4f} "
              f"val_loss={scores['loss']:.4f} val_{stage.monitor}={scores[stage.monitor]:.4f}"
              f"{' *' if improved else ''}", file=sys.stderr, flush=True)
        meter.tic, meter.loss_sum, meter.loss_n = time.time(), 0.0, 0


def finish(fold: Fold, state: ResumeState, paths: FoldPaths) -> pd.DataFrame:
    """Write the best and the last weights as TrainedModel checkpoints and the history (the first process), and
    drop the resume state: a forced rerun trains afresh. Returns the history."""
    table = pd.DataFrame(state.history)
    if fold.group.main:
        if state.best_state is None:  # the monitor was never finite (e.g. one-class val): keep the last epoch
            state.best_state, state.best_row = fold.scored.state_dict(), len(state.history) - 1
        best = state.history[state.best_row]
        replace(fold.record, progress={"best_epoch": best["epoch"], "best_step": best["step"],
                                       "best_score": state.best_score}).save(paths.model, state.best_state,
                                                                             fold.model)
        replace(fold.record, progress={"epoch": state.epoch, "step": state.updates}).save(
            paths.last, fold.scored.state_dict(), fold.model)
        write_csv(paths.history, table)
        publish(paths.cams_staging, paths.cams)
        Path(paths.state).unlink(missing_ok=True)
    fold.group.barrier()  # the other processes return once the first has written the results
    return table


def train_fold(cfg: ModelConfig, classes: list[str], split: pd.DataFrame, manifest: pd.DataFrame, norm: dict,
               paths: FoldPaths, seed: int, device: torch.device, provenance: dict | None = None,
               trackers: list = (), workers: int | str = "auto") -> pd.DataFrame:
    """Train one fold and return its history; writes the checkpoints, the history and the resume state.

    In a distributed group (train.launch), each process trains on its share of every epoch's batches
    through DDP and scores its share of the val videos (gathered: each once); the first writes the files.

    Args:
        cfg: the model's config entry.
        classes: data.classes, in output order.
        split: the fold's split table (video_id, partition).
        manifest: the cached videos with their labels and targets.
        norm: the fold's normalisation statistics, {"mean", "std"} from its train partition; used when
            cfg.normalise is "fold" (None otherwise).
        paths: where the fold's files go.
        seed: the run's seed (weights, sampling, augmentation).
        device: where the model trains.
        provenance: the block the checkpoints carry (provenance.provenance).
        trackers: experiment trackers (cineflow.tracking), each told the params and every validation.
        workers: resources.loader_workers (see loop.loader_workers).
    """
    train_rows, val_rows = (fold_rows(split, manifest, p) for p in ("train", "val"))
    if train_rows.empty or val_rows.empty:
        raise ValueError("fold has an empty train or val partition; add patients or lower splits.folds")
    fold = setup(cfg, classes, train_rows, val_rows, manifest, norm, seed, device, workers, provenance)
    state, saved = ResumeState.load(paths.state, resume_key(fold, train_rows), fold.model, fold.ema)
    task = fold.record.task
    for tracker in trackers:
        tracker.log_params({**asdict(cfg), "loss": fold.record.loss, "monitor": fold.record.monitor,
                            "task": task.name})
    print(f"task {task.name}, loss {fold.record.loss}, monitor {fold.record.monitor}, precision "
          f"{fold.precision.name}, {len(fold.stages)} stage(s), "
          f"{sum(p.numel() for p in fold.model.parameters()):,} parameters", file=sys.stderr, flush=True)
    cams = None
    if cfg.gradcam_every and fold.group.main:
        if saved is None:  # a fresh run: CAMs an earlier, unfinished run drew are not this run's
            shutil.rmtree(paths.cams_staging, ignore_errors=True)
        cams = TrainingCams(paths.cams_staging, fold.record, fold.val_rows, fold.y_val, cfg.gradcam_every,
                            cfg.gradcam_videos, device)
    StageRunner(fold, state, saved, paths.state, trackers, cams).run()
    return finish(fold, state, paths)
