"""The input-shift warning: a fold model trained on the demo finds its own held-out videos in distribution and
flags clips that are no echocardiogram (a cartoon, a natural scene), with the reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cineflow.config import CacheConfig, DemoConfig, EvalConfig, ModelConfig, SplitConfig, resolve
from cineflow.data import demo
from cineflow.data.cache import cache_shard
from cineflow.data.labels import validate
from cineflow.data.manifest import build_manifest
from cineflow.data.normalisation import fold_normalisation
from cineflow.data.splits import fold_rows, make_splits
from cineflow.data.video_io import write_avi, write_mp4
from cineflow.evaluate.predict import predict_new_videos
from cineflow.evaluate.shift import reference_of, save_reference
from cineflow.models.trained import TrainedModel
from cineflow.train.fold import FoldPaths, train_fold

DEVICE = torch.device("cpu")


def cartoon(n=24, size=48):
    """A sky, a lawn and a white ball rolling across: a cartoon, in colour."""
    yy, xx = np.mgrid[0:size, 0:size]
    frames = np.empty((n, size, size, 3), np.uint8)
    for t in range(n):
        frame = np.full((size, size, 3), (120, 200, 255), np.uint8)
        frame[size * 2 // 3:] = (60, 180, 60)
        frame[(xx - (5 + 1.5 * t) % size) ** 2 + (yy - size / 2) ** 2 < 40] = (250, 250, 240)
        frames[t] = frame
    return frames


def natural_scene(n=24, size=48, seed=1):
    """A camera panning over smooth random texture."""
    import cv2

    texture = cv2.GaussianBlur(np.random.default_rng(seed).uniform(0, 255, (2 * size, 2 * size)), (0, 0), 3)
    texture = (texture - texture.min()) / (texture.max() - texture.min()) * 255
    return np.stack([texture[t:t + size, t:t + size].astype(np.uint8) for t in range(n)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny3d trained for two epochs on fold 0 of a 60-patient demo, with its shift reference."""
    root = tmp_path_factory.mktemp("shift")
    cfg = resolve({"demo": {"n_patients": 60, "clips_per_patient": 1, "hflip_fraction": 0, "n_frames": 24,
                            "size": 32, "n_corrupt": 0},
                   "cache": {"shards": 1, "size": 24}, "splits": {"folds": 3, "val_fraction": 0.3},
                   "models": {"tiny": {"arch": "tiny3d", "arch_params": {"width": 4}, "clip_length": 8,
                                       "epochs": 2, "batch_size": 8}},
                   "evaluate": {"eval_clips": 2}})
    classes = cfg["data"]["classes"]
    labels = validate(demo.write_dataset(DemoConfig.from_dict(cfg["demo"]), 5, classes, root), classes, root,
                      subgroups=demo.SUBGROUP_COLUMNS)
    manifest, _ = build_manifest(labels, [cache_shard(labels, root, root / "cache", CacheConfig.from_dict(cfg["cache"]))])
    split = make_splits(manifest, SplitConfig.from_dict(cfg["splits"]), 5)[0]
    out = root / "fold_0"
    train_fold(ModelConfig.from_dict(cfg["models"]["tiny"]), classes, split, manifest,
               fold_normalisation(split, manifest, seed=1), FoldPaths(out / "model.pt", out / "last.pt",
                                                                      out / "history.csv", out / "state.pt"),
               seed=1, device=DEVICE)
    trained = TrainedModel.load(out / "model.pt", DEVICE)
    evaluate = EvalConfig.from_dict(cfg["evaluate"])
    ref = reference_of(trained, fold_rows(split, manifest, "train"), fold_rows(split, manifest, "val"), evaluate,
                       DEVICE, 0)
    save_reference(out / "shift_reference.npz", ref)
    return root, out, evaluate, split, manifest


def test_held_out_demo_videos_are_in_distribution_and_other_videos_are_not(trained, tmp_path):
    root, out, evaluate, split, manifest = trained
    test = fold_rows(split, manifest, "test")
    videos = pd.DataFrame({"video_id": test["video_id"], "path": [f"videos/{v}.avi" for v in test["video_id"]]})
    own = predict_new_videos(videos, [out / "model.pt"], [{"threshold": 0.5}], evaluate, tmp_path / "own", DEVICE,
                             references=[out / "shift_reference.npz"], root=root)
    assert len(own) == len(test) >= 20
    assert own["in_distribution"].mean() >= 0.9, own[["video_id", "shift_score", "shift_reasons"]]
    strangers = tmp_path / "strangers"
    write_mp4(strangers / "cartoon.mp4", cartoon(), 24)
    write_avi(strangers / "natural.avi", natural_scene(), 30)
    write_mp4(strangers / "cartoon_grey.mp4", cartoon()[..., 1], 30)  # right frame rate, grey: still no echo
    flagged = predict_new_videos(strangers, [out / "model.pt"], [{"threshold": 0.5}], evaluate, tmp_path / "new",
                                 DEVICE, references=[out / "shift_reference.npz"]).set_index("video_id")
    assert not flagged["in_distribution"].any(), flagged[["shift_score", "shift_reasons"]]
    assert (flagged["shift_score"] > own["shift_score"].max()).all()  # the embedding alone already tells them apart
    assert "frame rate 24 outside training 30-30" in flagged.loc["cartoon", "shift_reasons"]
    assert "intensity histogram" in flagged.loc["natural", "shift_reasons"]
