"""One fold trained by two processes (torchrun, DDP over gloo on the CPU): the results are written once,
and the validation scores gathered from the two processes are those of every val video, each once."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
from test_trainer import model_cfg

from cineflow.config import TrackingConfig
from cineflow.data.normalisation import fold_normalisation
from cineflow.data.sampling import ClipSpec
from cineflow.data.splits import fold_rows
from cineflow.models.inference import predict_videos
from cineflow.models.trained import TrainedModel, load_checkpoint
from cineflow.tasks import task_for
from cineflow.train.distributed import Group
from cineflow.train.launch import FoldJob, launch
from helpers import SNAKEMAKE, TINY, settings
from helpers.workflow import copy_repo, write_config


def test_fewer_batches_than_processes_is_a_clear_error():
    with pytest.raises(ValueError, match="batch_size"):
        Group(1, 2).equal_share(1)


def test_group_shares_cover_every_item_once():
    n = 11
    shares = [Group(rank, 3).share(n) for rank in range(3)]
    assert sorted(np.concatenate(shares).tolist()) == list(range(n))
    assert [len(Group(rank, 3).equal_share(n)) for rank in range(3)] == [3, 3, 3]  # as many steps each
    assert Group().gather(np.arange(4), 4).tolist() == [0, 1, 2, 3]


def test_two_processes_train_one_fold_and_score_every_val_video_once(tiny_config, tiny_dataset, tmp_path):
    manifest, _, folds = tiny_dataset
    split = folds[0]
    split.to_csv(tmp_path / "split.csv", index=False)
    manifest.to_parquet(tmp_path / "manifest.parquet")
    norm = fold_normalisation(split, manifest, seed=1)
    cfg = model_cfg(tiny_config, epochs=2, gpus=2, batch_size=2, augment={"shift": {"p": 1.0, "pixels": 2}})
    out = tmp_path / "out"
    launch(FoldJob(model=asdict(cfg), classes=tiny_config["data"]["classes"], split=str(tmp_path / "split.csv"),
                   manifest=str(tmp_path / "manifest.parquet"), norm=norm, seed=1,
                   paths={"model": str(out / "model.pt"), "last": str(out / "last.pt"),
                          "history": str(out / "history.csv"), "state": str(out / "state" / "state.pt")},
                   workers=0, threads=1, deterministic="warn",
                   tracking=asdict(settings(TrackingConfig, "tracking", tensorboard=True)),
                   tracking_dir=str(tmp_path / "tracking"), run="tiny/fold_0"), 2, tmp_path / "job.json")

    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2]  # written once, by the first process
    assert (history["train_loss"] > 0).all()  # both processes had batches to train on
    assert not (out / "state" / "state.pt").exists()
    assert json.loads((tmp_path / "job.json").read_text())["model"]["gpus"] == 2
    # tracked as one process is: the first process alone wrote the run, with every validation in it
    events = list((tmp_path / "tracking" / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(events) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    logged = EventAccumulator(str(events[0].parent)).Reload()
    assert [e.step for e in logged.Scalars("val_loss")] == [1, 2]

    # the last epoch's val metrics, from the two processes' gathered scores, are those of scoring every
    # val video once in one process with the same weights
    last = load_checkpoint(out / "last.pt")
    model = TrainedModel.load(out / "model.pt").module
    model.load_state_dict(last["state_dict"])
    val = fold_rows(split, manifest, "val")
    probs = predict_videos(model, val, norm["mean"], norm["std"], ClipSpec.of(cfg), 1, torch.device("cpu"),
                           block=cfg.batch_size, output=last["output"])
    task = task_for(cfg.task, cfg.target, tiny_config["data"]["classes"])
    single = task.val_metrics(task.targets(val), probs)
    assert history["val_loss"].iloc[-1] == pytest.approx(single["loss"], rel=1e-5)
    assert history["val_roc_auc"].iloc[-1] == pytest.approx(single["roc_auc"], rel=1e-6)


def test_a_killed_two_process_training_resumes_and_matches_an_uninterrupted_one(tiny_config, tiny_dataset,
                                                                                 tmp_path, capfd):
    manifest, _, folds = tiny_dataset
    folds[0].to_csv(tmp_path / "split.csv", index=False)
    manifest.to_parquet(tmp_path / "manifest.parquet")
    norm = fold_normalisation(folds[0], manifest, seed=1)
    cfg = model_cfg(tiny_config, epochs=8, gpus=2, batch_size=2)  # epochs to spare: the kill lands mid-run

    def job(out: Path) -> FoldJob:
        return FoldJob(model=asdict(cfg), classes=tiny_config["data"]["classes"], split=str(tmp_path / "split.csv"),
                       manifest=str(tmp_path / "manifest.parquet"), norm=norm, seed=1,
                       paths={"model": str(out / "model.pt"), "last": str(out / "last.pt"),
                              "history": str(out / "history.csv"), "state": str(out / "state.pt")},
                       workers=0, threads=1, deterministic="warn")

    launch(job(tmp_path / "full"), 2, tmp_path / "full.json")
    # the same run, killed (SIGKILL to torchrun and both processes) once an epoch is saved
    (tmp_path / "killed.json").write_text(json.dumps(asdict(job(tmp_path / "killed"))))
    src = str(Path(__file__).resolve().parents[1] / "src")
    run = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                            "-m", "cineflow.train.launch", str(tmp_path / "killed.json")],
                           env=dict(os.environ, PYTHONPATH=src), start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (tmp_path / "killed" / "state.pt").exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    for process in [*psutil.Process(run.pid).children(recursive=True), psutil.Process(run.pid)]:
        process.send_signal(signal.SIGKILL)  # torchrun starts its workers in sessions of their own
    run.wait()
    state = load_checkpoint(tmp_path / "killed" / "state.pt")
    assert state["epoch"] < cfg.epochs and not (tmp_path / "killed" / "history.csv").exists()

    capfd.readouterr()
    launch(job(tmp_path / "killed"), 2, tmp_path / "killed.json")  # resumes from the saved epoch
    logged = capfd.readouterr()
    assert f"resuming from epoch {state['epoch']}, stage 1" in logged.out + logged.err
    full = pd.read_csv(tmp_path / "full" / "history.csv").drop(columns="seconds")
    resumed = pd.read_csv(tmp_path / "killed" / "history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(full, resumed)
    a = load_checkpoint(tmp_path / "full" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "killed" / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_train_rule_runs_a_two_process_fold_and_asks_for_two_gpus(tmp_path):
    """`gpus: 2` through Snakemake: the rule's script launches torchrun, the job asks for gpu=2."""
    workdir = copy_repo(tmp_path / "wf")
    config = json.loads(json.dumps(TINY))
    config["models"]["tiny"].update(gpus=2, batch_size=2, epochs=2)
    write_config(workdir, config)
    target = "results/tiny/fold_0/model.pt"
    dry = subprocess.run([SNAKEMAKE, "-n", target, "--cores", "2", "--resources", "gpu=2"], cwd=workdir,
                         capture_output=True, text=True)
    assert "gpu=2" in dry.stdout + dry.stderr
    run = subprocess.run([SNAKEMAKE, target, "--cores", "2", "--resources", "gpu=2"], cwd=workdir,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    log = (workdir / "results/logs/train/tiny/fold_0.log").read_text()
    assert "2 processes" in log and "task binary" in log  # the processes' output reached the rule's log
    history = pd.read_csv(workdir / "results/tiny/fold_0/history.csv")
    assert history["epoch"].tolist() == [1, 2] and (history["train_loss"] > 0).all()
