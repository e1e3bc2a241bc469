"""Training one fold: build what the config names, run the epochs with early stopping on a val metric,
keep the best checkpoint, and save a resume state after every epoch (train.resume)."""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel

from cineflow.config import ModelConfig
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
from cineflow.train.optim import apply_stage, build_optimizer, build_scheduler, step_scheduler
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
    model = build_model(cfg.arch, n_out, in_channels, cfg.pretrained, cfg.weights, input_size, **cfg.arch_params)
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
                                          find_unused_parameters=bool(cfg.freeze_epochs or cfg.unfreeze_blocks))
    forward = compiled(forward, cfg.compile)
    criterion = build_loss(loss_name, len(classes), y_train, **cfg.loss_params).to(device)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, lower_is_better=monitor in LOWER_IS_BETTER)
    precision = Precision(cfg.amp, device)

    key = config_hash({"model": asdict(cfg), "classes": classes, "seed": seed, "code": source_hash(),
                       "norm": [norm["mean"], norm["std"]], "processes": group.world,
                       "train": train_rows["video_id"].tolist(), "val": val_rows["video_id"].tolist()})
    state = ResumeState.load(paths.state, key, model, optimizer, scheduler, precision.scaler)
    for tracker in trackers:
        tracker.log_params({**asdict(cfg), "loss": loss_name, "monitor": monitor, "task": task.name})
    print(f"task {task.name}, loss {loss_name}, monitor {monitor}, precision {precision.name}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters", file=sys.stderr, flush=True)

    for epoch in range(state.next_epoch, cfg.epochs):
        if state.bad_epochs >= cfg.patience:
            break
        tic = time.time()
        model.train()
        stage = apply_stage(model, cfg, epoch)
        train_ds.set_epoch(epoch)
        batches = epoch_batches(cfg.sampler, task.batch_targets(y_train), cfg.batch_size, seed, epoch)
        steps = group.equal_share(len(batches)).tolist()  # all of them in a single process
        loader = training_loader(train_ds, batches, n_workers, device, prepare, steps)
        train_loss = group.mean(train_one_epoch(
            forward, loader, criterion, optimizer, precision, device, prepare, epoch, accumulate=cfg.accumulate,
            clip_grad_norm=cfg.clip_grad_norm, channels_last=cfg.channels_last,
            desc=f"epoch {epoch + 1}/{cfg.epochs}"))
        group.same_buffers(model)
        scores = validate(model, val_rows, y_val, task, norm, spec, device, cfg.batch_size, output, group)
        current = scores[monitor]
        step_scheduler(scheduler, current)
        improved = is_better(monitor, current, state.best_score)
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = current, epoch, 0
            state.best_state = copy.deepcopy(model.state_dict())
        else:
            state.bad_epochs += 1
        state.epoch = epoch
        state.history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": scores["loss"],
                              **{f"val_{k}": v for k, v in scores.items() if k != "loss"},
                              "lr": optimizer.param_groups[-1]["lr"], "stage": stage,
                              "seconds": round(time.time() - tic, 3)})
        for tracker in trackers:
            tracker.log_epoch(epoch + 1, {k: v for k, v in state.history[-1].items() if isinstance(v, float)})
        print(f"epoch {epoch + 1} ({stage}): train_loss={train_loss:.4f} val_loss={scores['loss']:.4f} "
              f"val_{monitor}={current:.4f}{' *' if improved else ''}", file=sys.stderr, flush=True)
        if group.main:
            state.save(paths.state, model, optimizer, scheduler, precision.scaler)

    table = pd.DataFrame(state.history)
    if group.main:
        if state.best_state is None:  # the monitor was never finite (e.g. one-class val): keep the last epoch
            state.best_state, state.best_epoch = model.state_dict(), len(state.history) - 1
        payload = {"model": asdict(cfg), "task": task.as_dict(), "classes": list(classes), "loss": loss_name,
                   "output": output, "monitor": monitor, "n_outputs": n_out, "in_channels": in_channels,
                   "input_size": list(input_size), "normalisation": norm,
                   "preprocess": checkpoint.preprocess_of(manifest), "provenance": provenance or {}}
        checkpoint.save(paths.model, {**payload, "state_dict": state.best_state, "best_epoch": state.best_epoch + 1,
                                      "best_score": state.best_score})
        checkpoint.save(paths.last, {**payload, "state_dict": model.state_dict(), "epoch": len(state.history)})
        write_csv(paths.history, table)
        Path(paths.state).unlink(missing_ok=True)  # finished: a forced rerun trains afresh
    group.barrier()  # the other processes return once the first has written the results
    return table
