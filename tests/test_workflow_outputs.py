"""Outputs of one tiny run of the workflow: files with provenance, quarantine, pooled metrics, prediction
on new videos, reproducibility.

The run is the session's `workflow` fixture (conftest.py), in a copy of the repository.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cineflow.models.trained import TrainedModel
from cineflow.provenance import source_hash
from helpers import TINY
from helpers.media import gradient_clip, write_dicom
from helpers.tracking import mlflow_run
from helpers.workflow import (
    CONFIG,
    assert_same_results,
    copy_repo,
    interrupt_when,
    snakemake,
    started,
    wheel_install,
    write_config,
)

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """cineflow installed from its built wheel into a fresh environment (helpers.workflow.wheel_install)."""
    return wheel_install(tmp_path_factory.mktemp("wheel"))


def new_videos(workflow: Path, folder: Path) -> Path:
    """New videos to predict: two demo AVIs, a broken file and a DICOM cine loop in a subfolder."""
    folder.mkdir()
    for name in ("patient_000_clip0.avi", "patient_001_clip0.avi", "corrupt_0.avi"):
        shutil.copy(workflow / "resources" / "demo" / "videos" / name, folder / name)
    write_dicom(folder / "scanner" / "cine.dcm", gradient_clip(12, 40, rgb=False))
    return folder


def test_all_outputs_exist_with_provenance(workflow):
    results = workflow / "results"
    manifest = pd.read_parquet(results / "manifest.parquet")
    assert {"video_id", "source", "label", "group", "augment", "n_frames", "fps", "height", "width",
            "frames_path"} <= set(manifest.columns)
    for fold in (0, 1):
        split = pd.read_csv(results / "splits" / f"fold_{fold}.csv")
        assert set(split.columns) >= {"video_id", "group", "label", "partition"}
        run = results / "tiny" / f"fold_{fold}"
        assert (run / "model.pt").is_file() and (run / "history.csv").is_file()
        metrics = json.loads((run / "metrics.json").read_text())
        for key in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "mcc",
                    "confusion_matrix"):
            assert key in metrics["metrics"]
        assert {"config", "code_version", "packages"} <= set(metrics["provenance"])
        assert metrics["provenance"]["config"]["models"]["tiny"]["epochs"] == 8
        assert metrics["provenance"]["hardware"]["device"] == "cpu" and metrics["trained_on"]["device"] == "cpu"
        predictions = pd.read_csv(run / "predictions.csv")
        assert {"video_id", "group", "label", "score", "prediction"} <= set(predictions.columns)
        cams = sorted((run / "gradcam").glob("*.mp4"))
        assert len(cams) == 1
        # drawn on the demo's own 32 px frames (cached at 24), original | overlay
        assert pd.read_csv(run / "gradcam" / "index.csv")["drawn_on"].tolist() == ["source 32x32"]
        with av.open(str(cams[0])) as container:  # 64 wide; 32 high under the caption's band
            assert container.streams.video[0].width == 64 and 32 < container.streams.video[0].height < 72
    summary = json.loads((results / "tiny" / "summary.json").read_text())
    assert len(summary["metrics"]["roc_auc"]["per_fold"]) == 2
    assert {"mean", "std", "per_fold"} == set(summary["metrics"]["accuracy"])


def test_corrupt_video_is_quarantined_and_the_run_goes_on(workflow):
    quarantine = pd.read_csv(workflow / "results" / "quarantine.csv")
    assert quarantine["video_id"].tolist() == ["corrupt_0"]
    assert quarantine["reason"].str.len().gt(0).all()
    manifest = pd.read_parquet(workflow / "results" / "manifest.parquet")
    assert "corrupt_0" not in set(manifest["video_id"])
    assert "corrupt_0" in (workflow / "results" / "report.html").read_text()


def test_out_of_fold_predictions_pooled_metrics_and_confidence_intervals(workflow):
    results = workflow / "results"
    oof = pd.read_parquet(results / "tiny" / "oof_predictions.parquet")
    for fold in (0, 1):
        split = pd.read_csv(results / "splits" / f"fold_{fold}.csv")
        tested = set(split.loc[split["partition"] == "test", "video_id"])
        assert set(oof.loc[oof["fold"] == fold, "video_id"]) == tested
    assert oof["video_id"].is_unique and (oof["uncertainty"] > 0).all()  # MC dropout is on
    pooled = json.loads((results / "tiny" / "summary.json").read_text())["pooled"]
    assert pooled["n"] == len(oof) and pooled["bootstrap"] == 100
    auc = roc_auc_score(oof["label"] == "REDUCED", oof["score"])
    assert pooled["metrics"]["roc_auc"] == pytest.approx(auc)
    accuracy = ((oof["score"] >= oof["threshold"]) == (oof["label"] == "REDUCED")).mean()  # each fold's threshold
    assert pooled["metrics"]["accuracy"] == pytest.approx(accuracy)
    for name in ("roc_auc", "accuracy", "f1", "mcc"):
        lo, hi = pooled["ci"][name]
        assert lo <= pooled["metrics"][name] <= hi
    fold = json.loads((results / "tiny" / "fold_0" / "metrics.json").read_text())
    assert fold["mc_dropout"] == 3 and fold["n_test_clips"] == 2 * fold["n_test"]
    assert {"roc_auc", "accuracy"} <= set(fold["clip_metrics"]) and "ece" in fold["metrics"]
    assert "uncertainty_auc_wrong" in fold["metrics"]
    # recalibrated on val (platt by default): the scores before it kept beside the ones after
    assert fold["calibration"]["method"] in ("platt", "none") and "brier" in fold["uncalibrated"]
    assert {"raw_score_NORMAL", "raw_score_REDUCED"} <= set(oof.columns)
    ef = json.loads((results / "tiny_ef" / "summary.json").read_text())["pooled"]["metrics"]
    assert {"mae_bin_<30", "mae_bin_>=70", "auc_below_35", "auc_below_50", "loa_lower", "loa_upper",
            "uncertainty_spearman"} <= set(ef)
    assert sum(b["n"] for b in ef["bins"].values()) == 16
    figures = {p.name for p in (results / "tiny" / "plots").glob("*.png")}
    assert figures == {"roc.png", "pr.png", "confusion.png", "calibration.png", "decision_curve.png",
                       "uncertainty.png", "learning_curves.png"}
    figures = {p.name for p in (results / "tiny_ef" / "plots").glob("*.png")}
    assert {"scatter.png", "bland_altman.png", "bin_mae.png"} <= figures


def test_predict_rule_and_command_line_on_new_videos(workflow, tmp_path, installed):
    """The fold models' ensemble on a folder of new AVIs, a DICOM cine loop and a broken file."""
    new = new_videos(workflow, tmp_path / "new")
    # set on the command line, as the README shows: --config reads `True` as text, cineflow as the boolean
    snakemake(workflow, "results/predict/tiny/predictions.csv", "--config", f"predict={{input: {new}, gradcam: True}}")
    out = workflow / "results" / "predict" / "tiny"
    table = pd.read_csv(out / "predictions.csv")
    assert table["video_id"].tolist() == ["corrupt_0", "patient_000_clip0", "patient_001_clip0", "scanner__cine"]
    assert table["status"].tolist() == ["quarantined", "ok", "ok", "ok"] and table["reason"][0]
    ok = table[table["status"] == "ok"]
    assert ok["prediction"].isin(["NORMAL", "REDUCED"]).all() and ok["score"].between(0, 1).all()
    assert (ok["n_models"] == 2).all() and (ok["fold_sd"] > 0).all() and (ok["uncertainty"] > 0).all()
    threshold = np.mean([json.loads((workflow / "results" / "tiny" / f"fold_{k}" / "metrics.json").read_text())
                         ["threshold"] for k in (0, 1)])
    assert ok["threshold"].tolist() == pytest.approx([threshold] * 3)  # the folds' thresholds, averaged
    assert ((ok["score"] >= threshold) == (ok["prediction"] == "REDUCED")).all()
    assert sorted(p.name for p in (out / "gradcam").glob("*.mp4")) == sorted(ok["cam"])
    with av.open(str(out / "gradcam" / "scanner__cine.mp4")) as container:  # the DICOM cine's own 40 x 40
        assert container.streams.video[0].width == 80 and 40 < container.streams.video[0].height < 80
    # the command line, installed from the built wheel into a fresh environment and run outside the
    # checkout, gives the same numbers for the same videos and settings
    cli = installed / "bin" / "cineflow-predict"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    subprocess.run([str(cli), str(new), "--summary", str(workflow / "results" / "tiny" / "summary.json"),
                    "--out", str(tmp_path / "p.parquet"), "--eval-clips", "2", "--mc-dropout", "3",
                    "--seed", str(CONFIG["seed"])], cwd=outside, check=True, timeout=300)
    same = pd.read_parquet(tmp_path / "p.parquet")
    assert same["score"].tolist() == pytest.approx(table["score"].tolist(), nan_ok=True)


def test_a_bundle_predicts_alone_as_the_workflow_does(workflow, tmp_path, installed):
    """results/tiny/bundle copied to a folder without results/ or config, run by the installed wheel: the predict
    rule's scores to 1e-5 on the torch route, the same through ONNX Runtime, and a changed bundle refused."""
    new = new_videos(workflow, tmp_path / "new")
    snakemake(workflow, "results/tiny/bundle", "results/predict/tiny/predictions.csv", "--config",
              f"predict={{input: {new}}}")
    bundle = tmp_path / "elsewhere" / "bundle"
    shutil.copytree(workflow / "results" / "tiny" / "bundle", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["skipped"] == {"onnx": {}, "program": {}} and {
        "contract.json", "model_card.md", "folds/0/model.onnx", "folds/1/model.pt2",
        "folds/1/shift_reference.npz"} <= set(manifest["files"])
    for fold in json.loads((bundle / "contract.json").read_text())["folds"]:  # the torch.export program: the
        checkpoint = TrainedModel.load(bundle / fold["model"], "cpu")  # checkpoint's outputs, at another batch
        program = torch.export.load(str(bundle / fold["program"])).module()
        clips = torch.rand(3, fold["in_channels"], *fold["input_size"])
        with torch.no_grad():
            assert torch.allclose(program(clips), checkpoint.module(clips), atol=1e-5)

    def predict(*args: str, bundle_dir: Path = bundle) -> subprocess.CompletedProcess:
        return subprocess.run([str(installed / "bin" / "cineflow-predict"), str(new), "--bundle", str(bundle_dir),
                               "--seed", str(CONFIG["seed"]), *args], cwd=bundle.parent, capture_output=True,
                              text=True, timeout=300)

    workflow_table = pd.read_csv(workflow / "results" / "predict" / "tiny" / "predictions.csv")
    runs = {"torch": ("--mc-dropout", str(CONFIG["evaluate"].get("mc_dropout", 0))), "plain": ("--mc-dropout", "0"),
            "onnx": ("--mc-dropout", "0", "--runtime", "onnx")}
    tables = {}
    for name, args in runs.items():
        done = predict("--out", str(tmp_path / f"{name}.csv"), *args)
        assert done.returncode == 0 and "verified (manifest SHA-256" in done.stderr, done.stderr[-2000:]
        tables[name] = pd.read_csv(tmp_path / f"{name}.csv")
    assert tables["torch"]["video_id"].tolist() == workflow_table["video_id"].tolist()
    assert tables["torch"]["score"].to_numpy() == pytest.approx(workflow_table["score"].to_numpy(), abs=1e-5,
                                                                nan_ok=True)
    assert tables["torch"]["shift_score"].to_numpy() == pytest.approx(workflow_table["shift_score"].to_numpy(),
                                                                      abs=1e-5, nan_ok=True)
    assert tables["onnx"]["score"].to_numpy() == pytest.approx(tables["plain"]["score"].to_numpy(), abs=1e-5,
                                                               nan_ok=True)
    assert tables["onnx"]["prediction"].tolist()[1:] == tables["plain"]["prediction"].tolist()[1:]
    # one byte changed in a fold model: refused, the file named, nothing predicted
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    with open(tampered / "folds" / "1" / "model.onnx", "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 1]))
    done = predict("--out", str(tmp_path / "no.csv"), bundle_dir=tampered)
    assert done.returncode != 0 and "folds/1/model.onnx has changed since the bundle was built" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "no.csv").exists()


def test_a_run_killed_anywhere_resumes_to_the_same_results(workflow, tmp_path):
    """Same config, a fresh folder, the run interrupted four times: SIGKILL to Snakemake and all its jobs while
    a cache shard is written and while a fold trains (each followed by `--unlock` and `--rerun-incomplete`),
    SIGTERM to Snakemake alone once a job of the next run has started (it stops its jobs and marks nothing
    half-written as complete, so a plain rerun goes on), and SIGKILL again once a job of that plain rerun runs
    (training or evaluation, whichever is left). The end: byte-identical
    splits and predictions, identical metrics and histories, and no temporary file left in results/."""
    second = copy_repo(tmp_path / "second")
    write_config(second, {**CONFIG, "tracking": {}})  # the results do not depend on tracking; its imports cost
    targets = ("results/tiny/fold_0/metrics.json", "results/tiny/fold_1/metrics.json")
    results = second / "results"

    def resume(ready, sig=signal.SIGKILL, *extra):
        interrupt_when(started(second, *targets, *extra), ready, sig)
        if sig == signal.SIGKILL:  # a killed Snakemake leaves its lock and its jobs' outputs marked incomplete
            snakemake(second, "--unlock")

    def training():  # a validation of this run wrote a fold's resume state: a fold is training
        states = list((results / ".resume" / "tiny").glob("fold_*/state.pt"))
        before = {p: p.stat().st_mtime_ns for p in states}
        return lambda: any(p.exists() and p.stat().st_mtime_ns != before.get(p)
                           for p in (results / ".resume" / "tiny").glob("fold_*/state.pt"))

    def logs() -> dict:
        return {p: p.stat().st_mtime_ns for p in (results / "logs").rglob("*.log")}

    def a_job_runs():  # a job of this run has opened its log
        before = logs()
        return lambda: logs() != before

    resume(lambda: (results / "logs" / "cache_shard" / "0.log").exists())
    resume(training(), signal.SIGKILL, "--rerun-incomplete")
    resume(a_job_runs(), signal.SIGTERM, "--rerun-incomplete")
    assert "incomplete" not in snakemake(second, "-n", *targets).stdout.lower()  # SIGTERM marked nothing complete
    resume(a_job_runs())  # no --rerun-incomplete needed after a SIGTERM
    snakemake(second, "--rerun-incomplete", *targets)
    assert_same_results(workflow, second, ["tiny"], [0, 1])
    left = [p for p in results.rglob(".*") if re.search(r"\.tmp(dir|\.\w+)?$|^\.cineflow-frames-", p.name)]
    assert left == [], left
    dry = snakemake(second, "-n", *targets)
    assert "nothing to be done" in (dry.stdout + dry.stderr).lower()


def test_each_folds_mlflow_run_holds_its_checkpoint_test_metrics_gradcam_and_plots(workflow):
    store = workflow / "results" / "tracking"
    client, run = mlflow_run(store, "tiny/fold_0")  # one run: the later rules attached to the training's
    metrics = json.loads((workflow / "results" / "tiny" / "fold_0" / "metrics.json").read_text())["metrics"]
    assert run.data.metrics["test_roc_auc"] == pytest.approx(metrics["roc_auc"])
    assert "val_loss" in run.data.metrics and run.data.params["arch"] == "tiny3d"

    def listed(folder):
        return {Path(a.path).name for a in client.list_artifacts(run.info.run_id, folder)}

    assert listed("checkpoint") == {"model.pt", "history.csv"}
    assert listed("test") == {"metrics.json", "predictions.csv"}
    cams = workflow / "results" / "tiny" / "fold_0" / "gradcam"
    assert {p.name for p in cams.iterdir() if p.is_file() and not p.name.startswith(".")} == listed("gradcam")
    assert {p.name for p in (workflow / "results" / "tiny" / "plots").glob("*.png")} == listed("plots")
    # the fold ensemble, registered: its version's run holds the means over the folds and the summary
    summary = json.loads((workflow / "results" / "tiny" / "summary.json").read_text())
    (version,) = client.search_model_versions("name = 'tiny'")
    ensemble = client.get_run(version.run_id)
    assert ensemble.data.metrics["mean_roc_auc"] == pytest.approx(summary["metrics"]["roc_auc"]["mean"])
    assert version.tags["folds"] == "0,1" and run.info.run_id in version.tags["fold_runs"].split(",")
    assert {Path(a.path).name for a in client.list_artifacts(version.run_id, "ensemble")} == {"summary.json"}


def test_external_validation_scores_the_frozen_fold_ensemble(workflow):
    results = workflow / "results"
    for model in ("tiny", "tiny_ef"):
        metrics = json.loads((results / "external" / "site_c" / model / "metrics.json").read_text())
        table = pd.read_csv(results / "external" / "site_c" / model / "predictions.csv")
        assert metrics["n_models"] == 2 and metrics["n"] == len(table) == 6  # 6 patients, 1 clip each
        assert [s["video_id"] for s in metrics["skipped"]] == ["corrupt_0"] and metrics["skipped"][0]["reason"]
        assert {"shift_score", "in_distribution", "shift_reasons", "group", "label"} <= set(table.columns)
        assert metrics["shift"]["fraction_in_distribution"] == pytest.approx(table["in_distribution"].mean())
        checks = {c["check"]: c for c in metrics["checks"]}
        assert checks["frame rate"]["training"] == checks["frame rate"]["external"] == "30"
        assert {"classes", "frame height", "channels of the source"} <= set(checks)
        assert metrics["provenance"]["config"]["external"]["site_c"]["seed"] == 11
        assert (results / "external" / "site_c" / model / "plots" / "figures.json").is_file()
    binary = json.loads((results / "external" / "site_c" / "tiny" / "metrics.json").read_text())
    thresholds = [json.loads((results / "tiny" / f"fold_{k}" / "metrics.json").read_text())["threshold"]
                  for k in (0, 1)]
    assert binary["threshold"] == pytest.approx(np.mean(thresholds))  # the folds' val-tuned thresholds
    table = pd.read_csv(results / "external" / "site_c" / "tiny" / "predictions.csv")
    truth = (table["label"] == "REDUCED").astype(int)
    if truth.nunique() == 2:
        assert binary["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(truth, table["score_REDUCED"]))
    sites = pd.read_csv(workflow / "resources" / "demo_site_c" / "labels.csv")["site"]
    assert set(sites) == {"C"}


def test_subgroups_comparison_and_model_cards(workflow):
    results = workflow / "results"
    subgroups = json.loads((results / "tiny" / "subgroups.json").read_text())
    assert set(subgroups["subgroups"]) == {"site", "sex"}
    labels = pd.read_csv(workflow / "resources" / "demo" / "labels.csv")
    labels = labels[labels["path"].str.replace("videos/", "").str.replace(".avi", "").isin(
        pd.read_parquet(results / "manifest.parquet")["video_id"])]
    for column in ("site", "sex"):
        values = subgroups["subgroups"][column]
        assert [v["value"] for v in values] == sorted(labels[column].unique())
        assert sum(v["n"] for v in values) == subgroups["overall"]["n"]
        for v in values:  # 16 patients: each value is under evaluate.min_subgroup (10) patients
            assert (v["ci"] is None) == (v["n_groups"] < 10) and (v["ci"] is not None or "too few" in v["note"])
    # a binary model and a regression model: nothing to compare, and said so
    comparison = json.loads((results / "comparison.json").read_text())
    assert comparison["pairs"] == [] and comparison["not_compared"] == [["tiny", "tiny_ef"]]
    assert "Holm" in comparison["multiplicity"]
    card = (results / "tiny" / "model_card.md").read_text()
    for heading in ("# Model card: tiny", "## Intended use", "## Factors", "## Metrics", "## Quantitative analyses",
                    "### By `site`", "### External validation", "## Caveats and recommendations", "## Provenance"):
        assert heading in card
    assert "site_c" in card and "synthetic demo" in card
    assert json.loads((results / "tiny" / "fold_0" / "metrics.json").read_text())["provenance"]["code_version"] in card


def test_the_workflow_runs_from_the_installed_wheel_without_the_checkouts_library(tmp_path):
    """`pip install .` is enough for the workflow too: without src/, the Snakefile takes the schema and every rule
    script the library from the installed package (its files are the rules' code inputs)."""
    env = wheel_install(tmp_path / "wheel")
    work = copy_repo(tmp_path / "workflow", without=("src",))
    write_config(work, TINY)
    assert not (work / "scripts" / "cineflow").exists()  # the link into src/ leads nowhere here
    run = subprocess.run([str(env / "bin" / "python"), "-m", "snakemake", "results/splits/fold_0.norm.json",
                          "--cores", "2"], cwd=work, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    norm = json.loads((work / "results" / "splits" / "fold_0.norm.json").read_text())
    code = norm["provenance"]["code_version"]
    assert code.startswith("nogit+src.") and code.endswith(source_hash())  # the installed copy of this source
