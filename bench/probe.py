"""A frozen-embedding probe against fine-tuning the same encoder, per fold, on a CPU.

The encoder is torchvision's R(2+1)D-18 (the zoo's r2plus1d_18, untrained: the time does not depend on the
weights) on 16-frame clips of 112 x 112 grey videos, 48 patients in the demo's format, 2 folds. A probe fold is
`fit_probe` (a logistic head on the stored embeddings, its checkpoints and history); a fine-tuning fold is
`train_fold` for ONE epoch of the same encoder (a real fine-tuning runs tens of epochs, so the ratio is a lower
bound). The embedding pass (`embed_encoder`, once per encoder whatever the number of folds and probe settings) is
timed too, and the break-even: how many probe folds (or head settings) the one embedding pass pays for.
Each figure is the median of interleaved rounds after a warm-up call of each.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from echonet_like import interleaved, median_spread, save

from cineflow.config import CacheConfig, DemoConfig, ModelConfig, SplitConfig, expand_probes, resolve
from cineflow.data import demo
from cineflow.data.cache import cache_shard
from cineflow.data.labels import validate
from cineflow.data.manifest import build_manifest
from cineflow.data.normalisation import fold_normalisation
from cineflow.data.splits import make_splits
from cineflow.train.fold import FoldPaths, train_fold
from cineflow.train.probe import embed_encoder, fit_probe

PATIENTS, FRAMES, SIZE, CLIP, BATCH, ROUNDS = 48, 32, 112, 16, 4, 3
ENCODER = {"arch": "r2plus1d_18", "clip_length": CLIP, "clip_period": 1, "normalise": {"mean": [0.5], "std": [0.25]}}


def dataset(root: Path, cfg: dict):
    """(manifest, folds) of a demo-format dataset, made by the library's own demo -> cache -> splits."""
    labels = demo.write_dataset(DemoConfig.from_dict(cfg["demo"]), cfg["seed"], cfg["data"]["classes"], root)
    labels = validate(labels, cfg["data"]["classes"], root, subgroups=demo.SUBGROUP_COLUMNS)
    shard = cache_shard(labels, root, root / "cache", CacheConfig.from_dict(cfg["cache"]))
    manifest, _ = build_manifest(labels, [shard])
    return manifest, make_splits(manifest, SplitConfig.from_dict(cfg["splits"]), cfg["seed"])


def main() -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = Path(tempfile.mkdtemp(prefix="cineflow_bench_probe_"))
    cfg = resolve({
        "seed": 0, "demo": {"n_patients": PATIENTS, "clips_per_patient": 1, "n_frames": FRAMES, "size": SIZE,
                            "n_corrupt": 0},
        "cache": {"shards": 1, "size": SIZE}, "splits": {"folds": 2, "val_fraction": 0.25},
        "encoders": {"r2plus1d": ENCODER},
        "models": {"finetune": {**ENCODER, "epochs": 1, "batch_size": BATCH, "augment": {}},
                   "probe": {"arch": "probe", "probe": {"encoder": "r2plus1d", "head": "logistic"}}}})
    expand_probes(cfg)  # the probe gets its encoder's arch, frames and normalisation
    manifest, folds = dataset(work / "data", cfg)
    classes, cpu = cfg["data"]["classes"], torch.device("cpu")
    encoder = ModelConfig.from_dict(cfg["encoders"]["r2plus1d"])
    finetune, probe = (ModelConfig.from_dict(cfg["models"][m]) for m in ("finetune", "probe"))
    embeddings, weights = work / "embeddings.npz", work / "encoder.pt"

    def embed() -> None:
        embed_encoder(encoder, manifest, cfg["evaluate"]["eval_clips"], cpu, 8, cfg["seed"], embeddings, weights)

    def paths(name: str) -> FoldPaths:
        folder = work / name
        shutil.rmtree(folder, ignore_errors=True)  # a fresh fold each round: no resume state
        folder.mkdir()
        return FoldPaths(str(folder / "model.pt"), str(folder / "last.pt"), str(folder / "history.csv"),
                         str(folder / "state.pt"))

    def probe_fold() -> None:
        fit_probe(probe, classes, folds[0], manifest, embeddings, weights, paths("probe"), cfg["seed"])

    def finetune_fold() -> None:
        train_fold(finetune, classes, folds[0], manifest, fold_normalisation(folds[0], manifest, 0),
                   paths("finetune"), cfg["seed"], cpu, workers=0)

    seconds = interleaved({"embed": embed, "probe_fold": probe_fold, "finetune_fold": finetune_fold}, ROUNDS)
    figures = {"device": "cpu", "threads": torch.get_num_threads(), "rounds": ROUNDS, "videos": len(manifest),
               "clip_frames": CLIP, "pixels": SIZE, "finetune_epochs": 1}
    for key in ("embed", "probe_fold", "finetune_fold"):
        figures.update(median_spread(f"{key}_s", seconds[key], 3))
    ratios = [f / p for f, p in zip(seconds["finetune_fold"], seconds["probe_fold"])]
    figures.update(median_spread("speedup_per_fold", ratios, 1))
    # probe folds after which embedding once + probing beats fine-tuning one epoch per fold
    figures["break_even_folds"] = round(figures["embed_s"] / (figures["finetune_fold_s"] - figures["probe_fold_s"]), 2)
    save("probe", figures)


if __name__ == "__main__":
    main()
