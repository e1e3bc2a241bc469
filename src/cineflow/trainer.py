"""Training one fold: early stopping on a val metric, best checkpoint, resumable after a kill.

Resume state lives outside Snakemake's declared outputs (Snakemake deletes those before a rerun)
and is keyed by a hash of everything that determines the result, so a changed config or code
starts over instead of resuming into a different experiment.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import checkpoint
from .atomic import write_csv
from .augment import augment
from .config import ModelConfig
from .data import ClipDataset, normalise
from .inference import predict_videos
from .losses import build_loss
from .metrics import binary_metrics, is_better
from .models import build_model
from .provenance import config_hash, source_hash
from .sampling import ClipSpec


def fold_rows(split: pd.DataFrame, manifest: pd.DataFrame, partition: str) -> pd.DataFrame:
    """Manifest rows of one partition, in the split's order."""
    ids = split.loc[split["partition"] == partition, ["video_id"]]
    return ids.merge(manifest, on="video_id", how="left", validate="one_to_one").reset_index(drop=True)


def targets(rows: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return rows["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.int64)


def val_metrics(y: np.ndarray, probs: np.ndarray) -> dict:
    """Loss plus classification metrics at 0.5 (threshold tuning happens at evaluation)."""
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))))
    if probs.shape[1] == 2:
        scores = binary_metrics(y, probs[:, 1], 0.5)
        scores.pop("confusion_matrix")
    else:
        scores = {"accuracy": float(np.mean(probs.argmax(1) == y))}
    return {"loss": loss, **scores}


def train_fold(cfg: ModelConfig, classes: list[str], split: pd.DataFrame, manifest: pd.DataFrame, norm: dict,
               model_path: str | Path, history_path: str | Path, state_path: str | Path, seed: int,
               device: torch.device, provenance: dict | None = None) -> pd.DataFrame:
    """Train one fold; `norm` holds the fold's normalisation statistics (from its train partition)."""
    train_rows, val_rows = (fold_rows(split, manifest, p) for p in ("train", "val"))
    if train_rows.empty or val_rows.empty:
        raise ValueError("fold has an empty train or val partition; add patients or lower splits.folds")
    in_channels = int(manifest["channels"].iloc[0])
    mean, std = norm["mean"], norm["std"]
    spec = ClipSpec.of(cfg)
    y_train, y_val = targets(train_rows, classes), targets(val_rows, classes)
    train_ds = ClipDataset(train_rows, y_train, spec, seed=seed)

    torch.manual_seed(seed)
    model = build_model(cfg.arch, len(classes), in_channels, cfg.pretrained, cfg.weights, **cfg.arch_params)
    model.to(device)
    criterion = build_loss(cfg.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)

    resume_key = config_hash({"model": asdict(cfg), "classes": classes, "seed": seed, "code": source_hash(),
                              "norm": [mean, std],
                              "train": train_rows["video_id"].tolist(), "val": val_rows["video_id"].tolist()})
    state = _load_state(Path(state_path), resume_key)
    history: list[dict] = []
    best_score, best_state, best_epoch, bad_epochs, start = None, None, -1, 0, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        history, best_score, best_state = state["history"], state["best_score"], state["best_state"]
        best_epoch, bad_epochs, start = state["best_epoch"], state["bad_epochs"], state["epoch"] + 1
        print(f"resuming from epoch {start} (state {state_path})", file=sys.stderr, flush=True)

    for epoch in range(start, cfg.epochs):
        if bad_epochs >= cfg.patience:
            break
        tic = time.time()
        model.train()
        train_ds.set_epoch(epoch)
        loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, num_workers=0,
                            drop_last=len(train_ds) > cfg.batch_size,
                            generator=torch.Generator().manual_seed(seed * 10_000 + epoch))
        losses = []
        augmenter = torch.Generator().manual_seed(seed * 10_000 + epoch)
        for x, y in tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", file=sys.stderr, mininterval=10,
                         leave=False):
            x = x.to(device, non_blocking=True).float().div_(255.0)  # uint8 until here
            x = normalise(augment(x, cfg.augment, augmenter), mean, std)
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x), y.to(device))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
        probs = predict_videos(model, val_rows, mean, std, spec, 1, device, block=cfg.batch_size)
        scores = val_metrics(y_val, probs)
        if cfg.monitor not in scores:
            raise KeyError(f"monitor metric '{cfg.monitor}' is not computed; available: {sorted(scores)}")
        current = scores[cfg.monitor]
        improved = is_better(cfg.monitor, current, best_score)
        if improved:
            best_score, best_epoch, bad_epochs = current, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": scores["loss"],
                        **{f"val_{k}": v for k, v in scores.items() if k != "loss"},
                        "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - tic, 3)})
        print(f"epoch {epoch + 1}: train_loss={history[-1]['train_loss']:.4f} val_loss={scores['loss']:.4f} "
              f"val_{cfg.monitor}={current:.4f}{' *' if improved else ''}", file=sys.stderr, flush=True)
        checkpoint.save(state_path, {
            "key": resume_key, "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "history": history,
            "best_score": best_score, "best_state": best_state, "best_epoch": best_epoch,
            "bad_epochs": bad_epochs})

    if best_state is None:  # the monitor was never finite (e.g. one-class val): keep the last epoch
        best_state, best_epoch = model.state_dict(), len(history) - 1
    checkpoint.save(model_path, {
        "state_dict": best_state, "model": asdict(cfg), "classes": list(classes), "in_channels": in_channels,
        "normalisation": {"mean": mean, "std": std}, "best_epoch": best_epoch + 1, "monitor": cfg.monitor,
        "best_score": best_score, "provenance": provenance or {}})
    table = pd.DataFrame(history)
    write_csv(history_path, table)
    Path(state_path).unlink(missing_ok=True)  # finished: a forced rerun trains afresh
    return table


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
