"""Training on the tiny cached dataset: checkpoint contents, history, and exact resume after a kill."""

import pandas as pd
import pytest
import torch

from cineflow import checkpoint, trainer
from cineflow.config import EvalConfig, ModelConfig
from cineflow.evaluate import evaluate_fold
from cineflow.normalisation import fold_normalisation

DEVICE = torch.device("cpu")


def model_cfg(tiny_config, **over) -> ModelConfig:
    cfg = dict(tiny_config["models"]["tiny"], epochs=3, patience=10, monitor="loss")
    cfg.update(over)
    return ModelConfig.from_dict(cfg)


def run(tiny_config, tiny_dataset, out, cfg):
    manifest, _, folds = tiny_dataset
    norm = fold_normalisation(folds[0], manifest, seed=1)
    return trainer.train_fold(cfg, tiny_config["data"]["classes"], folds[0], manifest, norm, out / "model.pt",
                              out / "history.csv", out / "state" / "state.pt", seed=1, device=DEVICE)


def test_checkpoint_holds_what_is_needed_and_loads_weights_only(tiny_config, tiny_dataset, tmp_path):
    history = run(tiny_config, tiny_dataset, tmp_path, model_cfg(tiny_config))
    assert history["epoch"].tolist() == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_roc_auc"} <= set(history.columns)
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert ckpt["classes"] == tiny_config["data"]["classes"]
    assert set(ckpt["normalisation"]) == {"mean", "std"}
    assert ckpt["model"]["arch"] == "tiny3d"
    best = int(history["val_loss"].idxmin()) + 1
    assert ckpt["best_epoch"] == best  # selected on the metric, not the last epoch
    assert not (tmp_path / "state" / "state.pt").exists()  # finished runs leave no resume state
    manifest, _, folds = tiny_dataset
    metrics, predictions = evaluate_fold(tmp_path / "model.pt", folds[0], manifest,
                                         EvalConfig(threshold="youden", eval_clips=2, block=3), DEVICE)
    test_ids = folds[0].loc[folds[0]["partition"] == "test", "video_id"]
    assert sorted(predictions["video_id"]) == sorted(test_ids)
    assert 0 <= metrics["metrics"]["accuracy"] <= 1 and metrics["threshold_rule"] == "youden"


def test_killed_training_resumes_and_matches_an_uninterrupted_run(tiny_config, tiny_dataset, tmp_path,
                                                                  monkeypatch):
    cfg = model_cfg(tiny_config)
    full = run(tiny_config, tiny_dataset, tmp_path / "full", cfg)

    calls = {"n": 0}
    real = trainer.predict_videos

    def dies_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "predict_videos", dies_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_config, tiny_dataset, tmp_path / "resumed", cfg)
    state = checkpoint.load(tmp_path / "resumed" / "state" / "state.pt")
    assert state["epoch"] == 0  # epoch 1 completed before the kill
    monkeypatch.setattr(trainer, "predict_videos", real)

    resumed = run(tiny_config, tiny_dataset, tmp_path / "resumed", cfg)
    pd.testing.assert_frame_equal(full.drop(columns="seconds"), resumed.drop(columns="seconds"))
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_changed_config_does_not_resume(tiny_config, tiny_dataset, tmp_path, capfd):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    checkpoint.save(state_dir / "state.pt", {"key": "from another config", "epoch": 1})
    run(tiny_config, tiny_dataset, tmp_path, model_cfg(tiny_config, epochs=1))
    assert "training from scratch" in capfd.readouterr().err
