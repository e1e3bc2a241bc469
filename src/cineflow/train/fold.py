"""Training one fold: build what the config names, run its stages (each with its own optimizer, schedule
and trainable part) with early stopping on a val metric, keep the best checkpoint, and save a resume
state at every validation (train.resume): after every epoch, or every val_every_steps updates."""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel

from cineflow.config import ModelConfig, Stage, model_stages
from cineflow.data.cache import video_frames
from cineflow.data.clips import ClipDataset, Prepare
from cineflow.data.normalisation import model_normalisation
from cineflow.data.sampling import ClipSpec
from cineflow.data.splits import fold_rows
from cineflow.evaluate.metrics import LOWER_IS_BETTER, is_better
from cineflow.evaluate.tasks import Task, task_for
from cineflow.io import write_csv
from cineflow.models.architectures import build_model, init_output_bias, stem_channels
from cineflow.models.losses import LOSSES, build_loss, n_outputs
from cineflow.provenance import config_hash, source_hash
from cineflow.train import checkpoint, distributed
from cineflow.train.batching import epoch_batches
from cineflow.train.loop import compiled, loader_workers, to_channels_last, train_one_epoch, training_loader, validate
from cineflow.train.optim import Schedule, apply_trainable, build_optimizer, build_scheduler
from cineflow.train.precision import Precision
from cineflow.train.resume import ResumeState


@dataclass(frozen=True)
class FoldPaths:
    """Where one fold's training writes: the best and the last checkpoint, the per-epoch history, and
    the resume state (kept outside the rule's outputs)."""

    model: str
    last: str
    history: str
    state: str


def model_task(cfg: ModelConfig, classes: list[str]) -> tuple[Task, str, str]:
    """(task, loss name, monitor) with the task's defaults filled in, checked against each other."""
    task = task_for(cfg.task, cfg.target, classes)
    loss, monitor = cfg.loss or task.default_loss, cfg.monitor or task.default_monitor
    task.check(loss, LOSSES.meta(loss)["task"], monitor, "models/<name>")
    return task, loss, monitor


def chunk_end(step: int, n_steps: int, updates: int, every: int | None, accumulate: int) -> int:
    """Where the batches from `step` on stop for the next validation: the end of the epoch, or the batch
    whose update makes the run's update count a multiple of `every` (val_every_steps).

    Args:
        step: the first batch of the chunk (a multiple of `accumulate`).
        n_steps: batches in the epoch (of this process).
        updates: optimizer updates so far.
        every: val_every_steps, or None (validation after every epoch).
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
        trackers: experiment trackers (train.tracking), each told the params and every epoch.
        workers: resources.loader_workers (see loop.loader_workers).
    """
    group = distributed.group()
    train_rows, val_rows = (fold_rows(split, manifest, p) for p in ("train", "val"))
    if train_rows.empty or val_rows.empty:
        raise ValueError("fold has an empty train or val partition; add patients or lower splits.folds")
    task, loss_name, monitor = model_task(cfg, classes)
    stages = model_stages(cfg, monitor)
    for stage in stages:
        for metric in (stage.monitor, stage.stop_on):
            task.check(loss_name, LOSSES.meta(loss_name)["task"], metric, "models/<name>/stages")
    output = LOSSES.meta(loss_name)["output"]
    norm = model_normalisation(cfg.normalise, int(manifest["channels"].iloc[0]), norm)
    in_channels = stem_channels(int(manifest["channels"].iloc[0]), cfg.pretrained, cfg.weights)
    # the cached clips' size (the manifest's height and width are the source's)
    input_size = (cfg.clip_length, *map(int, video_frames(train_rows.iloc[0]).shape[1:3]))
    spec = ClipSpec.of(cfg)
    y_train, y_val = task.targets(train_rows), task.targets(val_rows)
    train_ds = ClipDataset(train_rows, y_train, spec, seed=seed)
    prepare, n_workers = Prepare(norm["mean"], norm["std"], cfg.augment, seed), loader_workers(workers, device)

    torch.manual_seed(seed)
    n_out = n_outputs(loss_name, len(classes))
    model = build_model(cfg.arch, n_out, in_channels, cfg.pretrained, cfg.weights, input_size,
                        weights_strict=cfg.weights_strict, fuse_directions=cfg.fuse_directions, **cfg.arch_params)
    if task.output_bias(y_train) is not None:
        init_output_bias(model, task.output_bias(y_train))
    if cfg.channels_last:
        to_channels_last(model)
    model.to(device)
    forward = model
    if group.world > 1:
        # built while every parameter trains, so that parameters unfrozen later are synchronised too; in
        # the frozen epochs they get no gradient, which DDP must be told to expect
        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                          find_unused_parameters=any(s.train != "all" for s in stages))
    forward = compiled(forward, cfg.compile)
    criterion = build_loss(loss_name, len(classes), y_train, **cfg.loss_params).to(device)
    precision = Precision(cfg.amp, device)
    batch_targets = task.batch_targets(y_train)
    steps_per_epoch = len(group.equal_share(len(epoch_batches(cfg.sampler, batch_targets, cfg.batch_size, seed, 0))))
    updates_per_epoch = -(-steps_per_epoch // cfg.accumulate)

    key = config_hash({"model": asdict(cfg), "classes": classes, "seed": seed, "code": source_hash(),
                       "norm": [norm["mean"], norm["std"]], "processes": group.world,
                       "train": train_rows["video_id"].tolist(), "val": val_rows["video_id"].tolist()})
    state, saved = ResumeState.load(paths.state, key, model)
    for tracker in trackers:
        tracker.log_params({**asdict(cfg), "loss": loss_name, "monitor": monitor, "task": task.name})
    print(f"task {task.name}, loss {loss_name}, monitor {monitor}, precision {precision.name}, {len(stages)} "
          f"stage(s), {sum(p.numel() for p in model.parameters()):,} parameters", file=sys.stderr, flush=True)

    optimizer = schedule = None
    while state.stage < len(stages):
        stage = stages[state.stage]
        stopped = bool(stage.patience) and state.bad >= stage.patience
        if stopped or state.epoch - state.stage_start >= stage.epochs:
            if stopped:
                print(f"stage {state.stage + 1}: no better val {stage.stop_on} for {state.bad} validations",
                      file=sys.stderr, flush=True)
            state.epoch += bool(state.step)  # stopped inside an epoch: the next stage starts with the next one
            state.step, state.epoch_metric = 0, None
            state.stage, state.stage_start, state.stage_updates, state.best_stop, state.bad = (
                state.stage + 1, state.epoch, 0, None, 0)
            optimizer = None
            if saved is not None:  # saved at the end of the stage: the next one starts with a new optimizer
                ResumeState.restore(saved, None, None, precision.scaler)
                saved = None
            continue
        if optimizer is None:
            optimizer = build_optimizer(model, stage)
            schedule = Schedule(build_scheduler(optimizer, stage, updates_per_epoch,
                                                lower_is_better=stage.stop_on in LOWER_IS_BETTER))
            print(f"stage {state.stage + 1}/{len(stages)}: {stage.epochs} epochs, {stage.optimizer} lr {stage.lr:g}"
                  f"{f' (backbone {stage.backbone_lr:g})' if stage.backbone_lr else ''}, {stage.scheduler}",
                  file=sys.stderr, flush=True)
            if saved is not None:
                ResumeState.restore(saved, optimizer, schedule, precision.scaler)
                saved = None
        in_stage = state.epoch - state.stage_start
        tic, loss_sum, loss_n = time.time(), 0.0, 0
        train_ds.set_epoch(state.epoch)
        batches = epoch_batches(cfg.sampler, batch_targets, cfg.batch_size, seed, state.epoch)
        steps = group.equal_share(len(batches)).tolist()  # all of them in a single process

        def updated() -> None:
            state.updates, state.stage_updates = state.updates + 1, state.stage_updates + 1
            schedule.update(state.stage_updates)

        epoch_done = False
        while not epoch_done:
            model.train()  # again after every validation, which leaves the model in eval mode
            trains = apply_trainable(model, stage, in_stage)
            start, stop = state.step, chunk_end(state.step, len(steps), state.updates, cfg.val_every_steps,
                                                cfg.accumulate)
            loader = training_loader(train_ds, batches, n_workers, device, prepare, steps[start:stop])
            loss_sum += (stop - start) * group.mean(train_one_epoch(
                forward, loader, criterion, optimizer, precision, device, prepare, state.epoch,
                accumulate=cfg.accumulate, clip_grad_norm=cfg.clip_grad_norm, channels_last=cfg.channels_last,
                desc=f"stage {state.stage + 1} epoch {in_stage + 1}/{stage.epochs}", on_update=updated))
            loss_n += stop - start
            state.step = stop
            epoch_done = stop == len(steps)
            due = (cfg.val_every_steps is None and epoch_done) or (epoch_done and in_stage + 1 == stage.epochs) or (
                cfg.val_every_steps is not None and state.updates % cfg.val_every_steps == 0)
            if due:
                group.same_buffers(model)
                scores = validate(model, val_rows, y_val, task, norm, spec, device, cfg.batch_size, output, group)
                row = {"epoch": state.epoch + 1 if epoch_done else round(state.epoch + stop / len(steps), 3),
                       "step": state.updates, "stage": state.stage + 1, "trains": trains,
                       "train_loss": loss_sum / max(1, loss_n), "val_loss": scores["loss"],
                       **{f"val_{k}": v for k, v in scores.items() if k != "loss"},
                       "lr": optimizer.param_groups[-1]["lr"], "seconds": round(time.time() - tic, 3)}
                improved = record(state, row, scores, stage, model)
                for tracker in trackers:
                    tracker.log_epoch(len(state.history), {k: v for k, v in row.items() if isinstance(v, float)})
                print(f"epoch {row['epoch']} step {state.updates} ({trains}): train_loss={row['train_loss']:.4f} "
                      f"val_loss={scores['loss']:.4f} val_{stage.monitor}={scores[stage.monitor]:.4f}"
                      f"{' *' if improved else ''}", file=sys.stderr, flush=True)
                tic, loss_sum, loss_n = time.time(), 0.0, 0
            if epoch_done:
                schedule.epoch(in_stage + 1, state.epoch_metric)
                state.epoch, state.step, state.epoch_metric = state.epoch + 1, 0, None
            if due:
                if group.main:
                    state.save(paths.state, model, optimizer, schedule, precision.scaler)
                if stage.patience and state.bad >= stage.patience:
                    break

    table = pd.DataFrame(state.history)
    if group.main:
        if state.best_state is None:  # the monitor was never finite (e.g. one-class val): keep the last epoch
            state.best_state, state.best_row = model.state_dict(), len(state.history) - 1
        payload = {"model": asdict(cfg), "task": task.as_dict(), "classes": list(classes), "loss": loss_name,
                   "output": output, "monitor": monitor, "n_outputs": n_out, "in_channels": in_channels,
                   "input_size": list(input_size), "normalisation": norm,
                   "preprocess": checkpoint.preprocess_of(manifest), "provenance": provenance or {}}
        checkpoint.save(paths.model, {**payload, "state_dict": state.best_state,
                                      "best_epoch": state.history[state.best_row]["epoch"],
                                      "best_step": state.history[state.best_row]["step"],
                                      "best_score": state.best_score})
        checkpoint.save(paths.last, {**payload, "state_dict": model.state_dict(), "epoch": state.epoch,
                                     "step": state.updates})
        write_csv(paths.history, table)
        Path(paths.state).unlink(missing_ok=True)  # finished: a forced rerun trains afresh
    group.barrier()  # the other processes return once the first has written the results
    return table
