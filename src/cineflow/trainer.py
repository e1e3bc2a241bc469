"""Training one fold: early stopping on a val metric, best checkpoint, resumable after a kill.

Resume state lives outside Snakemake's declared outputs (Snakemake deletes those before a rerun)
and is keyed by a hash of everything that determines the result, so a changed config or code
starts over instead of resuming into a different experiment.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import checkpoint, distributed
from .atomic import write_csv
from .batching import epoch_batches
from .config import AUTO_LOADER_WORKERS, ModelConfig
from .data import ClipBatches, ClipDataset, Prepare
from .inference import predict_videos
from .losses import build_loss, loss_entry, n_outputs
from .metrics import LOWER_IS_BETTER, is_better
from .models import build_model, init_output_bias, stem_channels
from .optim import apply_stage, build_optimizer, build_scheduler, step_scheduler
from .precision import Precision
from .provenance import config_hash, source_hash
from .sampling import ClipSpec
from .tasks import Task, task_for


def fold_rows(split: pd.DataFrame, manifest: pd.DataFrame, partition: str) -> pd.DataFrame:
    """Manifest rows of one partition, in the split's order."""
    ids = split.loc[split["partition"] == partition, ["video_id"]]
    return ids.merge(manifest, on="video_id", how="left", validate="one_to_one").reset_index(drop=True)


def model_task(cfg: ModelConfig, classes: list[str]) -> tuple[Task, str, str]:
    """(task, loss name, monitor) with the task's defaults filled in."""
    task = task_for(cfg.task, cfg.target, classes)
    return task, cfg.loss or task.default_loss, cfg.monitor or task.default_monitor


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """Channels-last weights: 4D (2D convs) as channels_last, 5D (3D convs) as channels_last_3d."""
    for p in model.parameters():
        if p.dim() in (4, 5):
            p.data = p.data.contiguous(memory_format=torch.channels_last if p.dim() == 4 else torch.channels_last_3d)
    return model


def compiled(model: torch.nn.Module, setting: bool | str) -> torch.nn.Module:
    """torch.compile for the training forward pass; the plain module keeps the weights for saving."""
    if not setting:
        return model
    return torch.compile(model, backend="inductor" if setting is True else setting)


def loader_workers(setting: int | str, device: torch.device) -> int:
    """resources.loader_workers: a number, or "auto" = AUTO_LOADER_WORKERS on a GPU and 0 on a CPU, where
    the model needs every core of the training process's share."""
    if setting == "auto":
        return AUTO_LOADER_WORKERS if device.type == "cuda" else 0
    return int(setting)


def training_loader(dataset: ClipDataset, batches: list[list[int]], workers: int, device: torch.device,
                    prepare: Prepare, steps: list[int] | None = None) -> DataLoader:
    """The epoch's DataLoader, one batch per item (data.ClipBatches); `steps`, the batches this process
    takes (all by default; one share of them per process in distributed training).

    With `workers` processes the batches are read ahead of the model (two each). On a GPU they stay
    uint8 and go to pinned memory; the training process prepares them on the GPU. Without one the
    workers prepare them too, so that work is spread over the workers instead of queueing in the
    training process."""
    on_cpu = device.type != "cuda"
    return DataLoader(ClipBatches(dataset, batches, prepare if on_cpu and workers else None), batch_size=None,
                      sampler=list(range(len(batches)) if steps is None else steps), num_workers=workers,
                      pin_memory=not on_cpu, prefetch_factor=2 if workers else None)


def ready_batches(loader, prepare: Prepare, device: torch.device, epoch: int):
    """(float clips on `device`, targets) of each batch of `loader`: uint8 batches are moved and prepared,
    batches a CPU worker already prepared are passed on."""
    for x, y, step in loader:
        x = x.to(device, non_blocking=True)
        yield (prepare(x, epoch, int(step)) if x.dtype == torch.uint8 else x), y


def train_one_epoch(model: torch.nn.Module, loader, criterion: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    precision: Precision, device: torch.device, prepare: Prepare, epoch: int, accumulate: int = 1,
                    clip_grad_norm: float | None = None, channels_last: bool = False, desc: str = "") -> float:
    """One pass over `loader`, training; returns the mean training loss (after EchoNet-Dynamic's run_epoch).

    uint8 batches become float, augmented and normalised on `device` (batches a CPU worker already
    prepared arrive as float). The loss is summed on the device and read once at the end: a per-step
    `.item()` would make the host wait for every step and leave the GPU idle while the next one is
    launched.

    Args:
        model: the module to call (the compiled one when `compile` is set); already on `device`, in train mode.
        loader: yields (clips, targets [B], step) as `training_loader` makes it: uint8 clips [B, T, H, W, C]
            as read, or float [B, C, T, H, W] when a CPU worker prepared them.
        criterion: the loss module, on `device`.
        optimizer: stepped every `accumulate` batches and after the last one.
        precision: autocast, loss scaling and the optimizer step (precision.Precision).
        device: where the batch goes.
        prepare: float conversion, augmentation and normalisation of a uint8 batch (data.Prepare).
        epoch: the epoch number, which with the step seeds the batch's augmentation.
        accumulate: batches per optimizer step (gradient accumulation).
        clip_grad_norm: the gradient norm clip, or None.
        channels_last: convert the batch to channels_last(_3d) memory format.
        desc: the progress bar's label.
    """
    total, n_batches = torch.zeros((), dtype=torch.float64, device=device), len(loader)
    optimizer.zero_grad(set_to_none=True)
    batches = tqdm(ready_batches(loader, prepare, device, epoch), total=n_batches, desc=desc, file=sys.stderr,
                   mininterval=10, leave=False)
    for step, (x, y) in enumerate(batches):
        if channels_last and x.dim() == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with precision.autocast():
            loss = criterion(model(x), y.to(device, non_blocking=True))
        precision.backward(loss / accumulate)
        if (step + 1) % accumulate == 0 or step + 1 == n_batches:
            precision.step(optimizer, model.parameters(), clip_grad_norm)
        total += loss.detach()
    return float(total.item()) / max(1, n_batches)


def train_fold(cfg: ModelConfig, classes: list[str], split: pd.DataFrame, manifest: pd.DataFrame, norm: dict,
               model_path: str | Path, history_path: str | Path, state_path: str | Path, seed: int,
               device: torch.device, provenance: dict | None = None, last_path: str | Path | None = None,
               trackers: list = (), workers: int | str = "auto") -> pd.DataFrame:
    """Train one fold; `norm` holds the fold's normalisation statistics (from its train partition).

    Writes the best checkpoint (selected on the monitor) to `model_path` and the last one to `last_path`.
    `workers` is resources.loader_workers (see `loader_workers` and `training_loader`). In a distributed
    group (distributed.launch), each process trains on its share of every epoch's batches through DDP,
    scores its share of the val videos (gathered: each once), and the first writes the files."""
    group = distributed.group()
    train_rows, val_rows = (fold_rows(split, manifest, p) for p in ("train", "val"))
    if train_rows.empty or val_rows.empty:
        raise ValueError("fold has an empty train or val partition; add patients or lower splits.folds")
    task, loss_name, monitor = model_task(cfg, classes)
    output = loss_entry(loss_name).output
    in_channels = stem_channels(int(manifest["channels"].iloc[0]), cfg.pretrained, cfg.weights)
    input_size = (cfg.clip_length, int(manifest["height"].iloc[0]), int(manifest["width"].iloc[0]))
    mean, std = norm["mean"], norm["std"]
    spec = ClipSpec.of(cfg)
    y_train, y_val = task.targets(train_rows), task.targets(val_rows)
    train_ds = ClipDataset(train_rows, y_train, spec, seed=seed)
    prepare, n_workers = Prepare(mean, std, cfg.augment, seed), loader_workers(workers, device)

    torch.manual_seed(seed)
    n_out = n_outputs(loss_name, len(classes))
    model = build_model(cfg.arch, n_out, in_channels, cfg.pretrained, cfg.weights, input_size, **cfg.arch_params)
    if task.kind == "regression":
        init_output_bias(model, float(y_train.mean()))
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

    resume_key = config_hash({"model": asdict(cfg), "classes": classes, "seed": seed, "code": source_hash(),
                              "norm": [mean, std], "processes": group.world,
                              "train": train_rows["video_id"].tolist(), "val": val_rows["video_id"].tolist()})
    state = _load_state(Path(state_path), resume_key)
    history: list[dict] = []
    best_score, best_state, best_epoch, bad_epochs, start = None, None, -1, 0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        precision.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        history, best_score, best_state = state["history"], state["best_score"], state["best_state"]
        best_epoch, bad_epochs, start = state["best_epoch"], state["bad_epochs"], state["epoch"] + 1
        print(f"resuming from epoch {start} (state {state_path})", file=sys.stderr, flush=True)
    for tracker in trackers:
        tracker.log_params({**asdict(cfg), "loss": loss_name, "monitor": monitor, "task": task.name})

    print(f"task {task.name}, loss {loss_name}, monitor {monitor}, precision {precision.name}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters", file=sys.stderr, flush=True)
    for epoch in range(start, cfg.epochs):
        if bad_epochs >= cfg.patience:
            break
        tic = time.time()
        model.train()
        stage = apply_stage(model, cfg, epoch)
        train_ds.set_epoch(epoch)
        batches = epoch_batches(cfg.sampler, y_train if task.kind == "classification" else np.zeros(len(y_train),
                                int), cfg.batch_size, seed, epoch)
        steps = group.equal_share(len(batches)).tolist()  # all of them in a single process
        loader = training_loader(train_ds, batches, n_workers, device, prepare, steps)
        train_loss = train_one_epoch(forward, loader, criterion, optimizer, precision, device, prepare, epoch,
                                     accumulate=cfg.accumulate, clip_grad_norm=cfg.clip_grad_norm,
                                     channels_last=cfg.channels_last, desc=f"epoch {epoch + 1}/{cfg.epochs}")
        train_loss = group.mean(train_loss)
        group.same_buffers(model)
        mine = val_rows.iloc[group.share(len(val_rows))].reset_index(drop=True)
        probs = group.gather(predict_videos(model, mine, mean, std, spec, 1, device, block=cfg.batch_size,
                                            output=output), len(val_rows))
        scores = task.val_metrics(y_val, probs)
        current = scores[monitor]
        step_scheduler(scheduler, current)
        improved = is_better(monitor, current, best_score)
        if improved:
            best_score, best_epoch, bad_epochs = current, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": scores["loss"],
                        **{f"val_{k}": v for k, v in scores.items() if k != "loss"},
                        "lr": optimizer.param_groups[-1]["lr"], "stage": stage,
                        "seconds": round(time.time() - tic, 3)})
        for tracker in trackers:
            tracker.log_epoch(epoch + 1, {k: v for k, v in history[-1].items() if isinstance(v, float)})
        print(f"epoch {epoch + 1} ({stage}): train_loss={history[-1]['train_loss']:.4f} "
              f"val_loss={scores['loss']:.4f} val_{monitor}={current:.4f}{' *' if improved else ''}",
              file=sys.stderr, flush=True)
        if not group.main:
            continue
        checkpoint.save(state_path, {
            "key": resume_key, "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": precision.scaler.state_dict(),
            "rng": torch.get_rng_state(), "history": history, "best_score": best_score, "best_state": best_state,
            "best_epoch": best_epoch, "bad_epochs": bad_epochs})

    table = pd.DataFrame(history)
    if not group.main:
        group.barrier()  # returns once the first process has written the results
        return table
    if best_state is None:  # the monitor was never finite (e.g. one-class val): keep the last epoch
        best_state, best_epoch = model.state_dict(), len(history) - 1
    payload = {"model": asdict(cfg), "task": task.as_dict(), "classes": list(classes), "loss": loss_name,
               "output": output, "monitor": monitor, "n_outputs": n_out, "in_channels": in_channels,
               "input_size": list(input_size), "normalisation": {"mean": mean, "std": std},
               "preprocess": _preprocess(manifest),
               "provenance": provenance or {}}
    checkpoint.save(model_path, {**payload, "state_dict": best_state, "best_epoch": best_epoch + 1,
                                 "best_score": best_score})
    if last_path is not None:
        checkpoint.save(last_path, {**payload, "state_dict": model.state_dict(), "epoch": len(history)})
    write_csv(history_path, table)
    Path(state_path).unlink(missing_ok=True)  # finished: a forced rerun trains afresh
    group.barrier()
    return table


def _preprocess(manifest: pd.DataFrame) -> dict | None:
    """The frame-cache settings the model was trained on, so `predict` prepares new videos the same way."""
    if "preprocess" not in manifest or manifest.empty:
        return None
    return json.loads(manifest["preprocess"].iloc[0])


def _load_state(path: Path, key: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        state = checkpoint.load(path)
    except Exception as err:  # a state file cut short by the kill itself
        print(f"ignoring unreadable resume state {path}: {err}", file=sys.stderr)
        return None
    if state.get("key") != key:
        print(f"config or code changed since {path} was written: training from scratch", file=sys.stderr)
        return None
    return state
