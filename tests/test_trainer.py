"""Training on the tiny cached dataset: checkpoint contents, history, exact resume after a kill, and
each task and training-recipe option run for real."""

import os
import subprocess
import sys
from dataclasses import replace

import av
import jsonschema
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from cineflow.config import EvalConfig, GradcamConfig, ModelConfig, TrackingConfig, load_schema
from cineflow.data.augment import augmentations
from cineflow.data.clips import ClipDataset, Prepare
from cineflow.data.normalisation import fold_normalisation
from cineflow.data.sampling import ClipSpec
from cineflow.data.splits import fold_rows
from cineflow.evaluate.fold import evaluate_fold
from cineflow.evaluate.gradcam import render_fold
from cineflow.models.architectures import build_model
from cineflow.models.trained import TrainedModel, load_checkpoint
from cineflow.seeding import seed_everything
from cineflow.tasks import task_for
from cineflow.tracking import Guarded, Tracker, log_ensemble, log_fold_results, open_trackers
from cineflow.train import fold as fold_module
from cineflow.train import loop
from cineflow.train.cams import followed_videos
from cineflow.train.fold import FoldPaths, train_fold
from cineflow.train.precision import Precision
from helpers import settings
from helpers.tracking import mlflow_run, wandb_runs

DEVICE = torch.device("cpu")


def model_cfg(tiny_config, **over) -> ModelConfig:
    cfg = dict(tiny_config["models"]["tiny"], epochs=3, patience=10, monitor="loss")
    cfg.update(over)
    return ModelConfig.from_dict(cfg)


def fold_paths(out) -> FoldPaths:
    return FoldPaths(model=out / "model.pt", last=out / "last.pt", history=out / "history.csv",
                     state=out / "state" / "state.pt")


def run(tiny_config, tiny_dataset, out, cfg, workers="auto", device=DEVICE):
    manifest, _, folds = tiny_dataset
    norm = fold_normalisation(folds[0], manifest, seed=1)
    return train_fold(cfg, tiny_config["data"]["classes"], folds[0], manifest, norm, fold_paths(out), seed=1,
                      device=device, workers=workers)


def test_loader_workers_read_the_same_batches_and_train_the_same_weights(tiny_config, tiny_dataset, tmp_path):
    """Batches read ahead by 2 reader threads (a CPU) or 2 worker processes (a GPU's DataLoader, into a ring of
    reused shared buffers) are the batches the training process reads itself; prepared into reused float
    buffers they are what a fresh prepare makes; and the same weights come out, bit for bit."""
    cfg = model_cfg(tiny_config, epochs=2, augment={"hflip": {"p": 0.5}, "shift": {"p": 1.0, "pixels": 3},
                                                    "brightness": {"p": 0.5, "delta": 0.1}})
    manifest, _, folds = tiny_dataset
    rows = fold_rows(folds[0], manifest, "train")
    clips = ClipDataset(rows, np.zeros(len(rows), np.int64), ClipSpec.of(cfg), seed=1)
    prepare = Prepare([0.3], [0.2], augmentations(cfg.augment), seed=1)
    batches = [[0, 1, 2], [3, 4, 5], [1, 2, 3], [4, 5, 0], [2, 3, 4], [5, 0, 1], [0, 2, 4]]  # more than a ring
    expected = [(loop.ClipBatches(clips, batches).__getitem__(k)[0].clone(), k) for k in range(len(batches))]
    for workers in (0, 2):
        in_processes = loop.process_loader(loop.ClipBatches(clips, batches), list(range(len(batches))), workers,
                                           pin_memory=False)  # the GPU's loader, without pinning
        for loader in (loop.training_loader(clips, batches, workers, DEVICE), in_processes):
            got = [(x.clone(), int(step)) for x, _, step in loader]
            assert [(x.dtype, k) for x, k in got] == [(torch.uint8, k) for k in range(len(batches))]
            assert all(torch.equal(a, b) for (a, _), (b, _) in zip(expected, got))  # each batch as read in-process
        loader = loop.training_loader(clips, batches, workers, DEVICE)
        ready = [x.clone() for x, _ in loop.ready_batches(loader, prepare, DEVICE, 0)]
        assert all(torch.equal(r, prepare(raw, 0, k)) for r, (raw, k) in zip(ready, expected))
    # torch's global stream where a DataLoader leaves it (dropout draws from it): results as before the threads
    after = []
    for loader in (DataLoader(loop.ClipBatches(clips, batches), batch_size=None),
                   loop.training_loader(clips, batches, 2, DEVICE)):
        torch.manual_seed(0)
        list(loader)
        after.append(torch.rand(4))
    assert torch.equal(*after)
    # the augmentation did act (shift p=1): equal batches are not plain normalisations of the same read
    assert not torch.equal(ready[0], Prepare([0.3], [0.2], augmentations({}), seed=1)(expected[0][0], 0, 0))
    run(tiny_config, tiny_dataset, tmp_path / "w0", cfg, workers=0)
    run(tiny_config, tiny_dataset, tmp_path / "w2", cfg, workers=2)
    a = torch.load(tmp_path / "w0" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "w2" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert loop.loader_workers("auto", DEVICE) == 0 and loop.loader_workers(3, DEVICE) == 3


def test_checkpoint_holds_what_is_needed_and_loads_weights_only(tiny_config, tiny_dataset, tmp_path):
    history = run(tiny_config, tiny_dataset, tmp_path, model_cfg(tiny_config))
    assert history["epoch"].tolist() == [1, 2, 3]
    assert {"train_loss", "val_loss", "val_roc_auc"} <= set(history.columns)
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert ckpt["classes"] == tiny_config["data"]["classes"]
    assert set(ckpt["normalisation"]) == {"mean", "std", "source"} and ckpt["normalisation"]["source"] == "fold"
    assert ckpt["model"]["arch"] == "tiny3d"
    best = int(history["val_loss"].idxmin()) + 1
    assert ckpt["best_epoch"] == best  # selected on the metric, not the last epoch
    assert not (tmp_path / "state" / "state.pt").exists()  # finished runs leave no resume state
    manifest, _, folds = tiny_dataset
    metrics, predictions = evaluate_fold(tmp_path / "model.pt", folds[0], manifest,
                                         settings(EvalConfig, "evaluate", eval_clips=2, block=3), DEVICE)
    test_ids = folds[0].loc[folds[0]["partition"] == "test", "video_id"]
    assert sorted(predictions["video_id"]) == sorted(test_ids)
    assert 0 <= metrics["metrics"]["accuracy"] <= 1 and metrics["threshold_rule"] == "youden"


STAGED = dict(batch_size=2, val_every_steps=2, monitor="roc_auc", stop_on="loss", stages=[
    {"epochs": 1, "train": "head", "optimizer": "adam", "lr": 0.01, "scheduler": "none", "patience": 0},
    {"epochs": 2, "optimizer": "lookahead_radam", "lr": 0.003, "scheduler_params": {"step_on_epochs": False}}])


@pytest.mark.parametrize("over, kill_at, saved", [
    ({}, 2, {"epoch": 1, "step": 0, "stage": 0}),  # killed in epoch 2: resumes after epoch 1
    (STAGED, 2, {"epoch": 0, "step": 2, "stage": 0}),  # inside an epoch, after 2 updates
    (STAGED, 3, {"epoch": 1, "step": 0, "stage": 0}),  # at the end of stage 1: stage 2 starts afresh
    # inside stage 2 (Lookahead's state restored), with a moving average of the weights (resumed too)
    ({**STAGED, "ema": {"decay": 0.5, "warmup": False}}, 4, {"epoch": 1, "step": 1, "stage": 1}),
], ids=["epochs", "mid-epoch", "stage-boundary", "mid-stage-2-ema"])
def test_killed_training_resumes_and_matches_an_uninterrupted_run(tiny_config, tiny_dataset, tmp_path,
                                                                  monkeypatch, over, kill_at, saved):
    """Killed at the `kill_at`-th validation, the run resumes from the one before and ends with the
    history and weights of a run never killed; with stages and val_every_steps too."""
    cfg = model_cfg(tiny_config, **over)
    full = run(tiny_config, tiny_dataset, tmp_path / "full", cfg)

    calls = {"n": 0}
    real = loop.predict_videos

    def dies(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "predict_videos", dies)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_config, tiny_dataset, tmp_path / "resumed", cfg)
    state = load_checkpoint(tmp_path / "resumed" / "state" / "state.pt")
    assert {k: state[k] for k in saved} == saved
    if "ema" in over:  # the average is saved beside the weights, and is not them
        assert any(not torch.equal(state["ema"][k], state["model"][k]) for k in state["model"])
    monkeypatch.setattr(loop, "predict_videos", real)

    resumed = run(tiny_config, tiny_dataset, tmp_path / "resumed", cfg)
    pd.testing.assert_frame_equal(full.drop(columns="seconds"), resumed.drop(columns="seconds"))
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    if over:  # validated every 2 updates and at each stage's end; stage 1 froze the backbone
        assert full["step"].tolist() == [2, 3, 4, 6, 8, 9]
        assert full["trains"].tolist() == ["head only"] * 2 + ["all"] * 4
        assert full["stage"].tolist() == [1, 1, 2, 2, 2, 2] and full["epoch"].iloc[0] == pytest.approx(2 / 3, 1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: pytest tests/test_trainer.py -k gpu")
@pytest.mark.parametrize("deterministic", [True, "warn"])
def test_killed_training_resumes_exactly_on_a_gpu(tiny_config, tiny_dataset, tmp_path, monkeypatch, deterministic):
    """On a GPU: the CUDA generators are saved and restored, so dropout after a resume draws the same masks.
    deterministic: true either gives bit-identical weights or names the op without a deterministic kernel;
    "warn" is allowed rounding differences only (atomics in 3D pooling backward)."""
    cuda = torch.device("cuda")
    cfg = model_cfg(tiny_config)  # its head has dropout
    try:
        seed_everything(1, None, deterministic)
        full = run(tiny_config, tiny_dataset, tmp_path / "full", cfg, workers=0, device=cuda)
        real, calls = loop.predict_videos, {"n": 0}

        def dies(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt("killed")
            return real(*args, **kwargs)

        monkeypatch.setattr(loop, "predict_videos", dies)
        seed_everything(1, None, deterministic)
        with pytest.raises(KeyboardInterrupt):
            run(tiny_config, tiny_dataset, tmp_path / "resumed", cfg, workers=0, device=cuda)
        monkeypatch.setattr(loop, "predict_videos", real)
        torch.cuda.manual_seed_all(12345)  # a fresh process's generators differ: only the saved state may count
        resumed = run(tiny_config, tiny_dataset, tmp_path / "resumed", cfg, workers=0, device=cuda)
    finally:
        seed_everything(0)  # the suite's setting
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=True)["state_dict"]
    if deterministic is True:
        pd.testing.assert_frame_equal(full.drop(columns="seconds"), resumed.drop(columns="seconds"))
        assert all(torch.equal(a[k], b[k]) for k in a)
    else:
        assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-4) for k in a)


def test_deterministic_modes_set_torch_and_the_schema_refuses_others():
    try:
        seed_everything(0, None, True)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled() and not torch.backends.cudnn.benchmark
        seed_everything(0, None, False)
        assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
        seed_everything(0, None, "warn")
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"]  # set before cuBLAS's first call
    finally:
        seed_everything(0)
    schema = load_schema()
    jsonschema.validate({"deterministic": True}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"deterministic": "strict"}, schema)
    # seeding leaves the compiler unloaded (torch's own call imports it: seconds in every job); compiling carries
    # the switch into its config
    script = ("import sys, torch; from cineflow.seeding import seed_everything, compile_determinism; "
              "seed_everything(0, None, 'warn'); print('torch._inductor.config' in sys.modules); "
              "compile_determinism(); import torch._inductor.config as c; print(c.deterministic)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_changed_config_does_not_resume(tiny_config, tiny_dataset, tmp_path, capfd):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    torch.save({"key": "from another config", "epoch": 1}, state_dir / "state.pt")
    run(tiny_config, tiny_dataset, tmp_path, model_cfg(tiny_config, epochs=1))
    assert "training from scratch" in capfd.readouterr().err


def test_regression_on_ef_trains_evaluates_and_explains(tiny_config, tiny_dataset, tmp_path):
    manifest, _, folds = tiny_dataset
    cfg = model_cfg(tiny_config, task="regression", target="ef", loss="weighted_mse", epochs=2, monitor=None,
                    scheduler="plateau")
    history = run(tiny_config, tiny_dataset, tmp_path, cfg)
    assert {"val_mae", "val_rmse", "val_r2"} <= set(history.columns)
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert ckpt["task"] == {"name": "regression", "classes": tiny_config["data"]["classes"], "target": "ef"}
    assert ckpt["monitor"] == "mae" and ckpt["n_outputs"] == 1
    mc = settings(EvalConfig, "evaluate", eval_clips=2, block=3, mc_dropout=4, regression_bins=[40, 55],
                  cutoffs=[40, 50])
    metrics, predictions = evaluate_fold(tmp_path / "model.pt", folds[0], manifest, mc, DEVICE, seed=5)
    assert metrics["task"] == {"name": "regression", "classes": tiny_config["data"]["classes"], "target": "ef"}
    assert metrics["threshold"] is None
    truth = predictions.merge(manifest[["video_id", "ef"]], on="video_id")
    assert np.allclose(truth["target"], truth["ef"]) and np.allclose(truth["error"], truth["prediction"] - truth["ef"])
    m = metrics["metrics"]
    assert m["mae"] == pytest.approx(truth["error"].abs().mean(), rel=1e-5)
    assert set(m["bins"]) == {"<40", "40-55", ">=55"} and sum(b["n"] for b in m["bins"].values()) == len(truth)
    assert {"auc_below_40", "auc_below_50", "loa_lower", "loa_upper", "uncertainty_spearman"} <= set(m)
    assert (predictions["uncertainty"] > 0).all()  # MC dropout: the passes differ
    again, _ = evaluate_fold(tmp_path / "model.pt", folds[0], manifest, mc, DEVICE, seed=5)
    assert again["metrics"]["mae"] == m["mae"]  # seeded passes: the same numbers on a rerun
    assert metrics["n_test_clips"] == 2 * len(truth) and "mae" in metrics["clip_metrics"]
    index = render_fold(tmp_path / "model.pt", predictions, manifest, None,
                        settings(GradcamConfig, "gradcam", n_videos=3, fps=5), tmp_path / "cams")
    assert index["kind"].tolist() == ["closest", "farthest", "uncertain"]
    for name in index["file"]:  # every pick is a playable MP4 with one frame per clip frame
        assert name.endswith(".mp4")
        with av.open(str(tmp_path / "cams" / name)) as video:
            assert video.streams.video[0].codec_context.name == "h264"
            assert sum(1 for _ in video.decode(video=0)) == cfg.clip_length


def test_multiclass_with_the_whole_training_recipe(tiny_config, tiny_dataset, tmp_path, monkeypatch):
    manifest, _, folds = tiny_dataset
    classes = ["low", "mid", "high"]
    manifest = manifest.assign(label=pd.cut(manifest["ef"], [0, 40, 55, 100], labels=classes).astype(str))
    steps = []
    real_step = Precision.step
    monkeypatch.setattr(Precision, "step", lambda self, *a: (steps.append(1), real_step(self, *a)))
    cfg = model_cfg(tiny_config, loss="focal", loss_params={"gamma": 2, "class_weights": "balanced"}, epochs=2,
                    monitor="f1_macro", sampler="balanced_batches", batch_size=3, accumulate=2, clip_grad_norm=1.0,
                    channels_last=True, compile="eager", optimizer="sgd", optimizer_params={"momentum": 0.9},
                    scheduler_params={"warmup_epochs": 1})
    norm = fold_normalisation(folds[0], manifest, seed=1)
    history = train_fold(cfg, classes, folds[0], manifest, norm, fold_paths(tmp_path), seed=1, device=DEVICE)
    n_batches = int((folds[0]["partition"] == "train").sum()) // 3
    assert len(steps) == 2 * -(-n_batches // 2)  # one update per two batches, each epoch
    assert {"val_f1_macro", "val_roc_auc"} <= set(history.columns)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and last["task"]["name"] == "multiclass"
    metrics, predictions = evaluate_fold(tmp_path / "model.pt", folds[0], manifest,
                                         settings(EvalConfig, "evaluate", eval_clips=1, block=4), DEVICE)
    assert metrics["task"]["name"] == "multiclass" and len(metrics["metrics"]["confusion_matrix"]) == 3
    assert 0 <= metrics["metrics"]["ece"] <= 1 and metrics["metrics"]["reliability"]
    assert set(predictions["prediction"]) <= set(classes)
    assert np.allclose(predictions[[f"score_{c}" for c in classes]].sum(axis=1), 1, atol=1e-5)


def test_stages_switch_the_optimizer_and_keep_the_frozen_backbone_untouched(tiny_config, tiny_dataset, tmp_path,
                                                                            monkeypatch):
    built = []
    real = fold_module.build_optimizer
    monkeypatch.setattr(fold_module, "build_optimizer", lambda model, stage: built.append(real(model, stage)) or built[-1])
    base = dict(arch="frame2d", arch_params={"backbone": "test_resnet", "temporal_head": "attention", "hidden": 8},
                augment={}, monitor="loss", lr=0.01)
    head = {"epochs": 1, "train": "head", "optimizer": "adam", "scheduler": "none"}
    run(tiny_config, tiny_dataset, tmp_path / "a", model_cfg(tiny_config, stages=[head], **base))
    history = run(tiny_config, tiny_dataset, tmp_path / "b", model_cfg(tiny_config, **base, stages=[
        head, {"epochs": 1, "train": 1, "optimizer": "lookahead_radam", "backbone_lr": 1e-4}]))
    assert history["trains"].tolist() == ["head only", "head + last 1 of 10 backbone blocks"]
    assert [type(o).__name__ for o in built] == ["Adam", "Adam", "Lookahead"]
    assert {g["name"]: g["initial_lr"] for g in built[-1].param_groups} == {"backbone": 1e-4, "head": 0.01}
    torch.manual_seed(1)
    initial = build_model("frame2d", 2, 1, input_size=(8, 24, 24), **base["arch_params"])
    start = initial.state_dict()
    stage1 = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["state_dict"]
    stage2 = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["state_dict"]
    backbone = [k for k in start if k.startswith("backbone.")]
    assert all(torch.equal(start[k], stage1[k]) for k in backbone)  # BatchNorm statistics included
    assert not torch.equal(start["head.classifier.2.weight"], stage1["head.classifier.2.weight"])
    last_block = [k for k in backbone if k.startswith("backbone.layer4.0.")]
    early = [k for k in backbone if k.startswith("backbone.conv1.")]
    assert last_block and early
    assert any(not torch.equal(start[k], stage2[k]) for k in last_block)
    assert all(torch.equal(start[k], stage2[k]) for k in early)
    # the attention head's weights over the frames are plotted next to the CAM
    manifest, _, folds = tiny_dataset
    _, predictions = evaluate_fold(tmp_path / "b" / "model.pt", folds[0], manifest,
                                   settings(EvalConfig, "evaluate", eval_clips=1), DEVICE)
    index = render_fold(tmp_path / "b" / "model.pt", predictions, manifest, 0.5,
                        settings(GradcamConfig, "gradcam", n_videos=1), tmp_path / "cams")
    assert index["attention"][0].endswith(".attention.png") and (tmp_path / "cams" / index["attention"][0]).is_file()


def test_tracking_writes_tensorboard_mlflow_and_wandb_offline_and_is_skipped_when_missing(
        tiny_config, tiny_dataset, tmp_path, monkeypatch, capfd):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_X_STATS_SAMPLING_INTERVAL", "0.1")  # system metrics within a short run
    on, store, paths = settings(TrackingConfig, "tracking", tensorboard=True, mlflow=True, wandb=True), \
        tmp_path / "tracking", fold_paths(tmp_path)
    with open_trackers(on, store, "tiny/fold_0") as trackers:
        assert sorted(t.name for t in trackers) == ["mlflow", "tensorboard", "wandb"]
        manifest, _, folds = tiny_dataset
        norm = fold_normalisation(folds[0], manifest, seed=1)
        train_fold(model_cfg(tiny_config, epochs=2), tiny_config["data"]["classes"], folds[0], manifest, norm,
                   paths, seed=1, device=DEVICE, trackers=trackers)
    val_loss = pd.read_csv(paths.history)["val_loss"].tolist()
    log_fold_results(on, "tiny", 0, "test", [paths.history], {"roc_auc": 0.75, "f1": float("nan")}, store)
    log_ensemble(on, "tiny", {"folds": [0], "metrics": {"roc_auc": {"mean": 0.75}}}, [paths.history], store)

    # each tracker's own reader gets every validation back
    logged = EventAccumulator(str(store / "tensorboard" / "tiny" / "fold_0")).Reload()
    assert [e.value for e in logged.Scalars("val_loss")] == pytest.approx(val_loss)
    client, fold_run = mlflow_run(store, "tiny/fold_0")
    history = sorted(client.get_metric_history(fold_run.info.run_id, "val_loss"), key=lambda m: m.step)
    assert [m.value for m in history] == pytest.approx(val_loss) and len(val_loss) == 2
    assert fold_run.data.params["arch"] == "tiny3d" and fold_run.data.metrics["test_roc_auc"] == 0.75
    assert [a.path for a in client.list_artifacts(fold_run.info.run_id, "test")] == ["test/history.csv"]
    runs = wandb_runs(store)
    train = runs[("tiny/fold_0", "train")]
    assert [h["val_loss"] for h in train["history"]] == pytest.approx(val_loss)
    assert train["config"]["arch"] == "tiny3d" and train["group"] == "tiny" and "cpu" in train["stats"]
    assert runs[("tiny/fold_0", "test")]["summary"]["test_roc_auc"] == 0.75
    assert runs[("tiny/fold_0", "test")]["artifacts"] == [("tiny-fold_0-test", "test", ["history.csv"])]
    # the ensemble: a registered-model version made of the fold runs
    _, ensemble = mlflow_run(store, "tiny/ensemble")
    (version,) = client.search_model_versions("name = 'tiny'")
    assert version.run_id == ensemble.info.run_id and version.tags["fold_runs"] == fold_run.info.run_id
    assert ensemble.data.metrics == {"mean_roc_auc": 0.75}
    assert runs[("tiny/ensemble", "ensemble")]["summary"]["mean_roc_auc"] == 0.75

    class Broken(Tracker):  # a store that fails mid-run (a full disk, a locked database)
        name, calls = "broken", 0

        def log_epoch(self, epoch, values):
            Broken.calls += 1
            raise OSError("No space left on device")

    capfd.readouterr()
    history = train_fold(model_cfg(tiny_config, epochs=2), tiny_config["data"]["classes"], folds[0], manifest, norm,
                         fold_paths(tmp_path / "broken"), seed=1, device=DEVICE, trackers=[Guarded(Broken())])
    assert len(history) == 2 and Broken.calls == 1  # the training went on; the tracker was told no more
    assert capfd.readouterr().err.count("broken failed in log_epoch (OSError: No space left on device)") == 1

    for module in ("mlflow", "mlflow.tracking", "torch.utils.tensorboard", "wandb"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with open_trackers(on, tmp_path / "none", "tiny/fold_0") as trackers:
        assert trackers == []
    assert "mlflow is switched on but not installed" in capfd.readouterr().err


@pytest.mark.parametrize("normalise, expected", [
    ("imagenet", {"mean": [0.449], "std": [0.226], "source": "imagenet"}),  # grey frames: ImageNet's average
    ({"mean": [0.1], "std": [0.5]}, {"mean": [0.1], "std": [0.5], "source": "config"}),
])
def test_fixed_normalisation_travels_in_the_checkpoint_to_evaluation(tiny_config, tiny_dataset, tmp_path, normalise,
                                                                     expected):
    manifest, _, folds = tiny_dataset
    cfg = model_cfg(tiny_config, epochs=1, normalise=normalise)
    train_fold(cfg, tiny_config["data"]["classes"], folds[0], manifest, None, fold_paths(tmp_path), seed=1,
               device=DEVICE)
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert ckpt["normalisation"]["source"] == expected["source"]
    assert np.allclose(ckpt["normalisation"]["mean"], expected["mean"], atol=1e-3)
    assert np.allclose(ckpt["normalisation"]["std"], expected["std"], atol=1e-3)
    # evaluation normalises with the checkpoint's values: other values give other scores
    _, predictions = evaluate_fold(tmp_path / "model.pt", folds[0], manifest, settings(EvalConfig, "evaluate"),
                                   DEVICE, seed=0)
    changed = dict(ckpt, normalisation={"mean": [0.9], "std": [0.05], "source": "config"})
    torch.save(changed, tmp_path / "changed.pt")
    _, other = evaluate_fold(tmp_path / "changed.pt", folds[0], manifest, settings(EvalConfig, "evaluate"), DEVICE,
                             seed=0)
    assert not np.allclose(predictions["score"], other["score"])


def test_videomae_trains_on_clips_cached_at_another_size_than_the_source(tiny_config, tiny_dataset, tmp_path):
    manifest, _, folds = tiny_dataset
    assert (manifest["height"] == 32).all()  # the demo's source size; the tiny cache holds 24 px frames
    arch_params = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
                   "patch_size": 8, "tubelet_size": 2, "hidden": 8}
    cfg = model_cfg(tiny_config, arch="videomae", arch_params=arch_params, epochs=1, clip_length=4)
    history = run(tiny_config, tiny_dataset, tmp_path, cfg)
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert len(history) == 1 and ckpt["input_size"] == [4, 24, 24]
    model = TrainedModel.load(tmp_path / "model.pt").module  # rebuilt at the same geometry
    assert model(torch.zeros(1, 1, 4, 24, 24)).shape == (1, 2)


def test_a_stated_output_bias_replaces_the_folds_mean_and_batches_count_as_whole_updates(tiny_config, tiny_dataset):
    """The EF study starts its output at 55.0, not at the fold's mean EF; it validates every 500 loop steps
    (batches), which with 8 batches per update is every 62 updates."""
    manifest, _, folds = tiny_dataset
    train, val = (fold_module.fold_rows(folds[0], manifest, p) for p in ("train", "val"))

    def last_bias(cfg) -> float:
        built = fold_module.setup(cfg, tiny_config["data"]["classes"], train, val, manifest, None, 1, DEVICE, 0, None)
        return [m for m in built.model.head.modules() if isinstance(m, torch.nn.Linear)][-1].bias.item()

    regression = dict(task="regression", target="ef", loss="mse", monitor=None, normalise="imagenet")
    assert last_bias(model_cfg(tiny_config, **regression, output_bias=55.0)) == 55.0
    assert last_bias(model_cfg(tiny_config, **regression)) == pytest.approx(float(train["ef"].mean()), rel=1e-5)
    interval = fold_module.validation_interval
    assert interval(model_cfg(tiny_config, val_every_steps=500, val_every_unit="batches", accumulate=8)) == 62
    assert interval(model_cfg(tiny_config, val_every_steps=500, accumulate=8)) == 500
    assert interval(model_cfg(tiny_config, val_every_steps=3, val_every_unit="batches", accumulate=8)) == 1
    assert interval(model_cfg(tiny_config)) is None


def test_a_stalled_run_lowers_the_lr_on_plateau_and_then_stops_early(tiny_config, tiny_dataset, tmp_path):
    """The echo quality recipe: progressive unfreezing as one stage, so the plateau scheduler and early stopping
    see every epoch. Weights that barely move (lr 1e-7) leave val loss where chance puts it: it stalls."""
    cfg = model_cfg(tiny_config, epochs=12, lr=1e-7, monitor="loss", patience=6, scheduler="plateau",
                    scheduler_params={"patience_epochs": 2, "decay_rate": 0.1},
                    stages=[{"epochs": 12, "train": "all"}])
    history = run(tiny_config, tiny_dataset, tmp_path, cfg)
    lrs = history["lr"].tolist()
    assert len(history) < 12  # stopped early
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(1e-8)  # the plateau lowered it first


def test_grad_cams_during_training_follow_the_same_val_videos_and_leave_the_weights_alone(
        tiny_config, tiny_dataset, tmp_path):
    manifest, _, folds = tiny_dataset
    norm = fold_normalisation(folds[0], manifest, seed=1)
    # a frozen stem first: the CAM still needs gradients through it (the clip carries them)
    stages = [{"epochs": 1, "train": "head"}, {"epochs": 2, "train": "all"}]
    weights = {}
    for every in (0, 1):
        out = tmp_path / f"every_{every}"
        paths = replace(fold_paths(out), cams=str(out / "training_gradcam"))
        cfg = model_cfg(tiny_config, stages=stages, gradcam_every=every, gradcam_videos=3,
                        augment={"hflip": {"p": 0.5}})
        train_fold(cfg, tiny_config["data"]["classes"], folds[0], manifest, norm, paths, seed=1, device=DEVICE,
                   workers=0)
        weights[every] = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # the same training, bit for bit
    cams = tmp_path / "every_1" / "training_gradcam"
    assert sorted(p.name for p in cams.iterdir()) == ["epoch_001", "epoch_002", "epoch_003"]
    assert not (tmp_path / "every_1" / "state" / "training_gradcam").exists()  # none left staged
    index = pd.read_csv(cams / "epoch_001" / "index.csv")  # epoch 1: the backbone frozen
    val = fold_rows(folds[0], manifest, "val")
    assert index["video_id"].tolist() == followed_videos(val, val["label"].map(
        tiny_config["data"]["classes"].index).to_numpy(), task_for(cfg.task, None, tiny_config["data"]["classes"]),
        3)[0]["video_id"].tolist()
    assert set(index["label"]) == set(tiny_config["data"]["classes"])  # one of each class in turn
    assert ((index["score"] >= 0) & (index["score"] <= 1)).all() and (index["epoch"] == 1).all()
    assert index["video_id"].tolist() == pd.read_csv(cams / "epoch_003" / "index.csv")["video_id"].tolist()
    with av.open(str(cams / index["file"][0])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.frames == tiny_config["models"]["tiny"]["clip_length"]
