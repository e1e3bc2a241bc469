"""The Snakemake workflow end to end on the tiny config, in a copy of the repository.

The copy isolates the DAG checks (touching a library file, editing the config) from the checkout.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from helpers import browser
from helpers import REPO, SNAKEMAKE, TINY
from helpers.media import gradient_clip, write_dicom
from helpers import slurm_cluster
from helpers.workflow import assert_same_results, copy_repo, edit, planned, snakemake, write_config

pytestmark = pytest.mark.workflow

# two models side by side in one run: the binary tiny model and an EF regression
CONFIG = yaml.safe_load(yaml.safe_dump(TINY))
# eight short epochs: a SLURM job cancelled after the first one has several left to resume
CONFIG["models"]["tiny"].update(epochs=8, patience=8)
CONFIG["models"]["tiny_ef"] = {"arch": "tiny3d", "arch_params": {"width": 4}, "task": "regression", "target": "ef",
                               "loss": "weighted_mse", "clip_length": 8, "clip_period": 1, "epochs": 1,
                               "batch_size": 4}
CONFIG["evaluate"]["mc_dropout"] = 3


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    workdir = copy_repo(tmp_path_factory.mktemp("workflow"))
    write_config(workdir, CONFIG)
    snakemake(workdir)
    return workdir


@contextlib.contextmanager
def config_in(workdir: Path, config: dict):
    """Run with `config` for a while; the module's config is back afterwards."""
    write_config(workdir, config)
    try:
        yield
    finally:
        write_config(workdir, CONFIG)


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


def test_report_is_self_contained(workflow):
    html = (workflow / "results" / "report.html").read_text()
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html)
    videos = re.findall(r'<video[^>]*src="data:video/mp4;base64,([^"]+)"', html)
    assert len(videos) == 4  # one per fold and model
    assert base64.b64decode(videos[0])[4:8] == b"ftyp"  # a real MP4
    assert len(re.findall(r'<img[^>]*src="data:image/png;base64,', html)) >= 3
    for needle in ("ROC", "Confusion", "Learning curves", "Provenance", "Quarantined", "fold"):
        assert needle in html
    # where each fold's results came from: its config hash, and the device that trained and evaluated it
    metrics = json.loads((workflow / "results" / "tiny_ef" / "fold_1" / "metrics.json").read_text())
    assert "Where each result came from" in html and metrics["provenance"]["config_hash"] in html
    assert f"cpu on {metrics['provenance']['hardware']['host']}" in html


def test_models_side_by_side_are_compared_in_the_report(workflow):
    results = workflow / "results"
    regression = json.loads((results / "tiny_ef" / "summary.json").read_text())
    assert {"mae", "rmse", "r2", "pearson_r"} <= set(regression["metrics"])
    fold = json.loads((results / "tiny_ef" / "fold_0" / "metrics.json").read_text())
    assert fold["task"] == "regression" and fold["loss"] == "weighted_mse" and fold["monitor"] == "mae"
    predictions = pd.read_csv(results / "tiny_ef" / "fold_0" / "predictions.csv")
    assert np.allclose(predictions["error"], predictions["prediction"] - predictions["target"])
    assert (results / "tiny_ef" / "fold_0" / "last.pt").is_file()
    html = (results / "report.html").read_text()
    table = html[html.index('id="comparison"'):html.index("</table>", html.index('id="comparison"'))]
    assert "tiny_ef" in table and table.count("★") == 1 and "mae" in table and "roc_auc" in table
    assert "Prediction vs truth" in html


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
    ef = json.loads((results / "tiny_ef" / "summary.json").read_text())["pooled"]["metrics"]
    assert {"mae_bin_<30", "mae_bin_>=70", "auc_below_35", "auc_below_50", "loa_lower", "loa_upper",
            "uncertainty_spearman"} <= set(ef)
    assert sum(b["n"] for b in ef["bins"].values()) == 16
    figures = {p.name for p in (results / "tiny" / "plots").glob("*.png")}
    assert figures == {"roc.png", "pr.png", "confusion.png", "calibration.png", "uncertainty.png",
                       "learning_curves.png"}
    figures = {p.name for p in (results / "tiny_ef" / "plots").glob("*.png")}
    assert {"scatter.png", "bland_altman.png", "bin_mae.png"} <= figures


def test_report_opens_in_headless_chromium(workflow):
    """No console errors, every video playable with a duration, every plot decoded; a screenshot to look at."""
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    shot = workflow / "results" / "report-screenshot.png"
    page = browser.open_report(workflow / "results" / "report.html", shot)
    assert page["errors"] == [], page["errors"]
    assert len(page["videos"]) == 4
    for video in page["videos"]:
        assert video["error"] is None and video["readyState"] >= 3 and video["duration"] > 0, video
    assert len(page["images"]) >= 11
    for image in page["images"]:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    assert shot.read_bytes()[:4] == b"\x89PNG"
    (REPO / "results").mkdir(exist_ok=True)
    shutil.copy(shot, REPO / "results" / "test-report-screenshot.png")


def test_report_lists_mistakes_with_links_to_their_cams(workflow):
    html = (workflow / "results" / "report.html").read_text()
    oof = pd.read_parquet(workflow / "results" / "tiny" / "oof_predictions.parquet")
    assert f"Misclassified videos ({int((~oof['correct']).sum())})" in html
    for anchor in re.findall(r'<a href="#(cam-[^"]+)">', html):
        assert f'id="{anchor}"' in html  # every link lands on a Grad-CAM


def test_snakemake_report_zip_holds_the_report_items(workflow):
    snakemake(workflow, "--report", "results/snakemake-report.zip")
    names = zipfile.ZipFile(workflow / "results" / "snakemake-report.zip").namelist()
    assert sum(n.endswith(".mp4") for n in names) == 4
    assert sum(n.endswith("/summary.json") for n in names) == 2
    assert any(n.endswith("/roc.png") for n in names) and any(n.endswith("/bland_altman.png") for n in names)
    assert any("/data/raw/" in n and n.endswith("/report.html") for n in names)  # ours, as an item


def test_predict_rule_and_command_line_on_new_videos(workflow, tmp_path):
    """The fold models' ensemble on a folder of new AVIs, a DICOM cine loop and a broken file."""
    new = tmp_path / "new"
    new.mkdir()
    for name in ("patient_000_clip0.avi", "patient_001_clip0.avi", "corrupt_0.avi"):
        shutil.copy(workflow / "resources" / "demo" / "videos" / name, new / name)
    write_dicom(new / "scanner" / "cine.dcm", gradient_clip(12, 40, rgb=False))
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["predict"] = {"input": str(new), "gradcam": True}
    with config_in(workflow, config):
        snakemake(workflow, "results/predict/tiny/predictions.csv")
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
    # the command line gives the same numbers for the same videos and settings
    cli = Path(SNAKEMAKE).with_name("cineflow-predict")
    subprocess.run([str(cli), str(new), "--model", "tiny", "--out", str(tmp_path / "p.parquet"), "--eval-clips", "2",
                    "--mc-dropout", "3", "--seed", str(CONFIG["seed"])], cwd=workflow, check=True, timeout=300)
    same = pd.read_parquet(tmp_path / "p.parquet")
    assert same["score"].tolist() == pytest.approx(table["score"].tolist(), nan_ok=True)


def test_nothing_to_do_after_a_run(workflow):
    out = snakemake(workflow, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_training_setting_reruns_training_onwards_only(workflow):
    config = yaml.safe_load(yaml.safe_dump(CONFIG, sort_keys=True))  # key order must not matter either
    config["models"]["tiny"]["lr"] = 0.0123
    with config_in(workflow, config):
        jobs = planned(workflow)
    assert jobs.get("train") == 2 and jobs.get("report") == 1
    assert not {"demo_data", "cache_shard", "manifest", "splits"} & set(jobs)


def test_cache_size_reruns_cache_and_everything_after(workflow):
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["cache"]["size"] = 20
    with config_in(workflow, config):
        jobs = planned(workflow)
    assert jobs.get("cache_shard") == 2 and jobs.get("splits") == 1 and jobs.get("train") == 4
    assert "demo_data" not in jobs


def test_report_code_reruns_only_the_report(workflow):
    edit(workflow / "src" / "cineflow" / "report.py")
    jobs = planned(workflow)
    assert set(jobs) == {"report", "all"}


def test_library_code_reruns_the_rules_that_use_it(workflow):
    edit(workflow / "src" / "cineflow" / "models.py")
    jobs = planned(workflow)
    assert {"train", "evaluate", "gradcam", "summarize", "report"} <= set(jobs)
    assert not {"cache_shard", "manifest", "splits"} & set(jobs)


def test_one_fold_by_its_target_name(workflow):
    jobs = planned(workflow, "results/tiny/fold_1/metrics.json", "-R", "train")
    assert jobs == {"train": 1, "evaluate": 1}


def test_splits_are_byte_identical_when_rebuilt(workflow):
    before = [(workflow / "results" / "splits" / f"fold_{k}.csv").read_bytes() for k in (0, 1)]
    snakemake(workflow, "-f", "--allowed-rules", "splits", "results/splits/fold_0.csv")
    after = [(workflow / "results" / "splits" / f"fold_{k}.csv").read_bytes() for k in (0, 1)]
    assert before == after


def test_a_second_run_of_the_same_config_gives_the_same_results(workflow, tmp_path):
    """Same config, same machine, a fresh folder: byte-identical splits and predictions, identical metrics."""
    second = copy_repo(tmp_path / "second")
    write_config(second, CONFIG)
    snakemake(second, "results/tiny/fold_0/metrics.json", "results/tiny/fold_1/metrics.json")
    assert_same_results(workflow, second, ["tiny"], [0, 1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real single-node SLURM (Debian's slurm-wlm + munge) with two fake GPUs; skipped where it cannot run."""
    reason = slurm_cluster.why_not_available()
    if reason:
        pytest.skip(reason)
    with slurm_cluster.single_node_cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env


def test_slurm_profile_runs_the_workflow_and_a_cancelled_training_resumes(workflow, cluster, tmp_path):
    """`snakemake --profile slurm` end to end on a real cluster. Fold 0's training is cancelled with scancel
    (SIGTERM) after its first epoch; the profile's retry resumes it from its last state. Every result equals
    the local run's, and the GPU rules asked SLURM for a GPU."""
    from cineflow.train import checkpoint

    workdir = copy_repo(tmp_path / "cluster")
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    del config["models"]["tiny_ef"]
    write_config(workdir, config)
    log = open(tmp_path / "snakemake.log", "w")
    run = subprocess.Popen([SNAKEMAKE, "--profile", "slurm", *slurm_cluster.EXECUTOR_ARGS], cwd=workdir,
                           env=cluster, stdout=log, stderr=subprocess.STDOUT)

    def tail() -> str:
        return (tmp_path / "snakemake.log").read_text()[-6000:]

    state = workdir / "results" / ".resume" / "tiny" / "fold_0" / "state.pt"
    while not state.exists():
        assert run.poll() is None, f"the run ended before training started:\n{tail()}"
        time.sleep(0.02)
    job = next(j for j in slurm_cluster.job_records(cluster)
               if j["Comment"] == "rule_train_wildcards_tiny_0" and j["JobState"] == "RUNNING")
    subprocess.run(["scontrol", "suspend", job["JobId"]], env=cluster, check=True, timeout=30)
    assert state.exists(), "fold 0's training finished before it could be cancelled"
    done = checkpoint.load(state)["epoch"] + 1  # epochs saved when SLURM stopped the job
    subprocess.run(["scancel", job["JobId"]], env=cluster, check=True, timeout=30)
    assert run.wait(timeout=800) == 0, tail()
    log.close()

    records = {j["JobId"]: j for j in slurm_cluster.job_records(cluster)}
    assert records[job["JobId"]]["JobState"] == "CANCELLED"
    by_rule: dict[str, list[dict]] = {}
    for record in records.values():
        by_rule.setdefault(record["Comment"].split("_wildcards")[0].removeprefix("rule_"), []).append(record)
    assert {"cache_shard", "normalisation", "train", "evaluate", "gradcam"} == set(by_rule)
    for rule, jobs in by_rule.items():
        gpu = rule in ("train", "evaluate", "gradcam")
        assert all((j["Partition"] == "gpu") == gpu for j in jobs), (rule, jobs)
        assert all(("gpu:1" in j.get("TresPerJob", "")) == gpu for j in jobs), (rule, jobs)
    assert len(by_rule["train"]) == 3  # two folds plus the resubmitted one

    train_log = (workdir / "results" / "logs" / "train" / "tiny" / "fold_0.log").read_text()
    resumed = int(re.search(r"resuming from epoch (\d+)", train_log).group(1))
    assert resumed >= done >= 1  # at most the epoch in progress was lost
    metrics = json.loads((workdir / "results" / "tiny" / "fold_0" / "metrics.json").read_text())
    assert metrics["trained_on"]["slurm_job_id"] != job["JobId"]  # the retry finished it
    assert metrics["provenance"]["hardware"]["slurm_job_id"] in records
    assert metrics["provenance"]["hardware"]["cuda_visible_devices"] in ("0", "1")  # a GPU of its own
    assert_same_results(workflow, workdir, ["tiny"], [0, 1])
    assert "SLURM job" in (workdir / "results" / "report.html").read_text()


def test_unknown_config_key_fails_at_parse_time(workflow):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["cache"]["sise"] = 20
    with config_in(workflow, config):
        out = snakemake(workflow, "-n", check=False)
    assert out.returncode != 0 and "sise" in out.stdout + out.stderr


def test_a_model_entry_that_cannot_work_fails_at_parse_time(workflow):
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["models"]["tiny_ef"].pop("target")
    with config_in(workflow, config):
        out = snakemake(workflow, "-n", check=False)
    assert out.returncode != 0 and "models/tiny_ef/target" in out.stdout + out.stderr


def test_lint_and_format():
    lint = subprocess.run([SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0 and "Lints for" not in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    snakefmt = str(Path(SNAKEMAKE).with_name("snakefmt"))
    fmt = subprocess.run([snakefmt, "--check", "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_parsing_the_workflow_imports_neither_torch_nor_sklearn():
    """Every `snakemake` call, and every cluster job twice, parses the workflow: the library modules that
    rules/common.smk imports must not pull in torch or scikit-learn (about 3 s together)."""
    modules = re.findall(r"^from (cineflow\.\w+) import", (REPO / "rules" / "common.smk").read_text(), re.M)
    assert len(modules) >= 5
    code = f"import sys; import {', '.join(modules)}; print(sorted({{'torch', 'sklearn'}} & set(sys.modules)))"
    out = subprocess.run([str(Path(SNAKEMAKE).with_name("python")), "-c", code], cwd=REPO / "src",
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
