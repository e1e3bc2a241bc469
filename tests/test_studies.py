"""The five source studies' data, placed unchanged at each example's data.root, run through the example
config up to the first fold's split: rows, labels, groups, originals vs augmented copies and what was
quarantined, as the issue's done-when command runs it; then each example's recipe trains and is
evaluated on the first fold, with the backbone shrunk and the epochs cut by the overrides stated in SHRUNK."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import REPO, job_counts
from helpers.studies import LUNG_CLASSES, STUDIES
from helpers.tracking import mlflow_run, wandb_runs
from helpers.workflow import copy_repo, snakemake

pytestmark = pytest.mark.workflow


def run_study(study: str, tmp_path, *targets: str, extra: dict | None = None, only: bool = False) -> tuple:
    """(workdir, what the generator wrote) after the example, with `extra` config on top (config/extra.yaml,
    which the training below keeps), ran to results/splits/fold_0.csv. `only`: the example with its SHRUNK
    models alone, so that its whole DAG (report_study) trains nothing else."""
    workdir = copy_repo(tmp_path / "repo")
    config = yaml.safe_load((REPO / "config" / "examples" / f"{study}.yaml").read_text())
    if only:
        config["models"] = {name: config["models"][name] for name in SHRUNK[study]}
        (workdir / "config" / "examples" / f"{study}.yaml").write_text(yaml.safe_dump(config))
    written = STUDIES[study](workdir / config["data"]["root"])
    (workdir / "config" / "extra.yaml").write_text(yaml.safe_dump(extra or {}))
    snakemake(workdir, "--configfile", f"config/examples/{study}.yaml", "config/extra.yaml",
              "--replace-workflow-config", "results/splits/fold_0.csv", *targets)
    return workdir, written


# what the training tests change in each example: a small backbone without hub weights, a 32 px cache of the
# model's own, short clips, small batches; stages keep their recipe with one epoch each (shrink below)
SHRUNK = {
    "ann_vs_normal": {"effnet_bilstm": {"arch_params": {"backbone": "test_efficientnet", "hidden": 8},
                                        "gradcam_every": 1}},
    "echo_quality": {"r2plus1d_quality_progressive": {"stages": [{"epochs": 3, "train": 2, "grow": 2}]}},
    "lung_xray": {"convnextv2_tiny": {"arch_params": {"backbone": "test_convnext"}},
                  "efficientnetv2_l": {"arch_params": {"backbone": "test_efficientnet"}, "size": 40}},
    "echonet_videomae": {"videomae_ef": {"arch_params": {
        "pool_hidden": 8, "hidden": [16, 8], "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64, "patch_size": 8}, "clip_period": 1, "accumulate": 1, "val_every_steps": 2}},
    "stall_catchers": {"r2plus1d_stall": {"accumulate": 2, "fuse_params": {"latent": 16, "hidden": 128}}},
}


def shrink(model: dict, over: dict) -> dict:
    """The example's model entry with SHRUNK's overrides and the common cuts."""
    cut = {"pretrained": False, "size": 32, "clip_length": 4, "batch_size": 2, "epochs": 2}
    if model.get("stages"):
        cut["stages"] = [dict(stage, epochs=1) for stage in model["stages"]]
    if model.get("freeze_epochs"):
        cut["freeze_epochs"] = 1
    return {**cut, **over}


def train_study(workdir, study: str) -> dict:
    """Train and evaluate the first fold of each model in SHRUNK[study] with the example's recipe; returns
    {model: (metrics, history)}."""
    config = yaml.safe_load((REPO / "config" / "examples" / f"{study}.yaml").read_text())
    overrides = {name: shrink(config["models"][name], over) for name, over in SHRUNK[study].items()}
    (workdir / "config" / "shrunk.yaml").write_text(yaml.safe_dump({"models": overrides}))
    snakemake(workdir, "--configfile", f"config/examples/{study}.yaml", "config/extra.yaml", "config/shrunk.yaml",
              "--replace-workflow-config", *[f"results/{name}/fold_0/metrics.json" for name in overrides])
    return {name: (json.loads((workdir / "results" / name / "fold_0" / "metrics.json").read_text()),
                   pd.read_csv(workdir / "results" / name / "fold_0" / "history.csv")) for name in overrides}


# what the tests that run an example to its report add: two folds, one CAM, a short bootstrap
SMALL_DAG = {"splits": {"folds": 2}, "gradcam": {"n_videos": 1}, "evaluate": {"bootstrap": 50}}


def report_study(workdir, study: str) -> dict:
    """After train_study: the example's whole DAG to results/report.html, with the same config files; returns
    the model's summary.json, subgroups.json, model card and the report's text."""
    snakemake(workdir, "--configfile", f"config/examples/{study}.yaml", "config/extra.yaml", "config/shrunk.yaml",
              "--replace-workflow-config", "results/report.html")
    name, = SHRUNK[study]
    results = workdir / "results"
    return {"summary": json.loads((results / name / "summary.json").read_text()),
            "subgroups": json.loads((results / name / "subgroups.json").read_text()),
            "model_card": (results / name / "model_card.md").read_text(),
            "report": (results / "report.html").read_text()}


def outputs(workdir) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    results = workdir / "results"
    return (pd.read_parquet(results / "manifest.parquet"), pd.read_csv(results / "quarantine.csv", dtype={"video_id": str}),
            pd.read_csv(results / "splits" / "fold_0.csv", dtype=str))


def test_ann_vs_normal_frame_folders_with_orig_and_hflip_copies(tmp_path):
    workdir, written = run_study("ann_vs_normal", tmp_path)
    manifest, quarantine, split = outputs(workdir)
    table = written["table"]
    assert len(manifest) + len(quarantine) == len(table)
    assert quarantine["video_id"].tolist() == written["quarantined"]
    assert "mixes frame sizes" in quarantine["reason"][0]
    expected = {f"{r.VIDEO_NAME}_{r.AUGMENT}": (r.TYPE, r.SCAN, "" if r.AUGMENT == "orig" else "hflip")
                for r in table.itertuples()}
    assert {r.video_id: (r.label, r.group, r.augment) for r in manifest.itertuples()} == {
        k: v for k, v in expected.items() if k not in written["quarantined"]}
    assert (manifest["n_frames"] == 12).all() and (manifest["fps"] == 30).all()
    # originals reach val and test; the hflip copies train only, with their scan
    held_out = split[split["partition"] != "train"]
    assert len(held_out) and held_out["video_id"].str.endswith("_orig").all()
    copies = split[split["video_id"].str.endswith("_hflip")]
    assert len(copies) and (copies["partition"] == "train").all()
    assert split.groupby("group")["partition"].nunique().max() == 1
    (metrics, history), = train_study(workdir, "ann_vs_normal").values()
    assert history["trains"].tolist() == ["head only", "all"]  # freeze_epochs: the two-stage shorthand
    cams = workdir / "results" / "effnet_bilstm" / "fold_0" / "training_gradcam"  # the study's periodic CAMs
    assert sorted(p.name for p in cams.glob("epoch_*")) == ["epoch_001", "epoch_002"]
    assert len(list(cams.glob("epoch_001/*.mp4"))) == 2  # one val video of each class
    assert metrics["threshold_rule"] == "youden" and "roc_auc" in metrics["metrics"]


def test_echo_quality_export_with_repeated_names_and_an_excel_table_groups_from_the_dicom_header(tmp_path):
    synthetic = {"from": "GOOD", "label": "POOR", "noise_level": 0.2, "blur_kernel": 5, "contrast_reduction": 0.5}
    # the workflow's default patient level (the example turns it off): each patient's two loops are rated apart
    workdir, written = run_study("echo_quality", tmp_path, only=True, extra={
        **SMALL_DAG, "data": {"synthetic_low_quality": synthetic}, "evaluate": {"bootstrap": 50,
                                                                                 "aggregate": {"by": "group"}}})
    manifest, quarantine, split = outputs(workdir)
    assert quarantine["video_id"].tolist() == written["quarantined"] + [  # the missing GOOD file and its copy
        f"{written['quarantined'][0]}__low_quality"] and set(quarantine["reason"]) == {"file not found"}
    table = written["table"].iloc[:-1]
    # the study's synthetic low-quality pairs: a POOR copy of each GOOD video, with its patient, train only
    copies = manifest[manifest["augment"] == "low_quality"].set_index("video_id")
    originals = manifest[manifest["augment"] == ""].set_index("video_id")
    assert len(copies) == (table["quality_score"] == 1).sum() and (copies["label"] == "POOR").all()
    assert (copies["group"] == originals.loc[copies.index.str.removesuffix("__low_quality"), "group"].values).all()
    assert set(split.loc[split["video_id"].isin(copies.index), "partition"]) == {"train"}
    assert split.loc[split["partition"] == "train", "video_id"].isin(copies.index).any()
    manifest = manifest[manifest["augment"] == ""]
    assert len(manifest) == len(table)
    by_id = manifest.set_index("video_id")
    for row in table.itertuples():  # IM_0001.dcm in every study folder: ids from the paths
        video_id = row.video_path[:-4].replace("/", "__")
        assert by_id.loc[video_id, "label"] == ["POOR", "GOOD"][row.quality_score]
        patient = int(row.video_path.split("/")[1][-2:])
        assert by_id.loc[video_id, "group"] == f"PAT{patient:03d}"  # PatientID, not the file
    assert manifest["group"].nunique() == 10 < len(manifest)
    assert split.groupby("group")["partition"].nunique().max() == 1
    (metrics, history), = train_study(workdir, "echo_quality").values()
    # progressive unfreezing in one stage (one optimizer, one plateau): the last 2, then 4, then 6 blocks
    assert history["trains"].tolist() == ["head + last 2 of 12 backbone blocks", "head + last 4 of 12 backbone blocks",
                                          "head + last 6 of 12 backbone blocks"]
    assert metrics["loss"] == "focal" and "roc_auc" in metrics["metrics"]
    # to the report: 4 of 10 patients mix labels, 6 remain, fewer than min_units: skipped, and said everywhere
    done = report_study(workdir, "echo_quality")
    units = done["summary"]["patient_level"]
    assert units["n_left_out"] == 4 and units["n_units"] == 10 and "metrics" not in units
    assert units["skipped"].startswith("6 patient(s) with one truth each, fewer than evaluate.aggregate.min_units")
    assert done["subgroups"]["overall"]["patient_level"]["skipped"] == units["skipped"]
    assert f"not reported: {units['skipped']}" in done["report"]
    assert f"patients: not reported, {units['skipped']}" in done["model_card"]


def test_lung_xray_kaggle_folders_with_spaces_and_a_cache_per_input_size(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    workdir, written = run_study("lung_xray", tmp_path)
    manifest, quarantine, split = outputs(workdir)
    assert quarantine["video_id"].tolist() == written["quarantined"]
    assert len(manifest) == len(written["files"]) and sorted(manifest["label"].unique()) == LUNG_CLASSES
    assert not (workdir / "results" / "splits" / "fold_1.csv").exists()  # the archive's own split: one fold
    partition_of = {f"{f.parts[-3]}__{f.parts[-2]}__{f.stem}": f.parts[-3] for f in written["files"]}
    assert dict(zip(split["video_id"], split["partition"])) == partition_of
    assert (manifest["height"] != manifest["height"].iloc[0]).any()  # mixed native sizes, one cached size
    frames = np.load(workdir / manifest["frames_path"].iloc[0], mmap_mode="r")
    assert frames.shape[1:] == (224, 224, 1)  # grey X-rays
    # the seven backbones, each at its own size: EfficientNet-V2 S, M and L from caches of their own
    plan = job_counts(snakemake(workdir, "-n", "--configfile", "config/examples/lung_xray.yaml",
                                "--replace-workflow-config", "results/report.html").stdout)
    assert plan["cache_shard_model"] == 3 * 8 and plan["manifest_model"] == 3 and plan["train"] == 7
    assert "cache_shard" not in plan  # the shared cache is built already
    trained = train_study(workdir, "lung_xray")
    for metrics, history in trained.values():  # stage 1 the head alone, constant lr; stage 2 everything
        assert history["trains"].tolist() == ["head only", "all"] and history["lr"][0] == 1e-4
        assert metrics["monitor"] == "accuracy" and len(metrics["metrics"]["confusion_matrix"]) == 5
    # the study's three trackers, each read back as its own reader reads it
    store, (metrics, history) = workdir / "results" / "tracking", trained["convnextv2_tiny"]
    _, run = mlflow_run(store, "convnextv2_tiny/fold_0", experiment="lungs-disease")
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["metrics"]["accuracy"])
    offline = wandb_runs(store)[("convnextv2_tiny/fold_0", "train")]
    assert [h["val_loss"] for h in offline["history"]] == pytest.approx(history["val_loss"].tolist())
    assert offline["config"]["arch"] == run.data.params["arch"] != ""
    assert ("convnextv2_tiny-fold_0-checkpoint", "model", ["history.csv", "model.pt"]) in offline["artifacts"]
    logged = EventAccumulator(str(store / "tensorboard" / "convnextv2_tiny" / "fold_0")).Reload()
    assert [e.step for e in logged.Scalars("lr")] == list(range(1, len(history) + 1))


def test_echonet_dynamic_as_published(tmp_path):
    workdir, written = run_study("echonet_videomae", tmp_path)
    manifest, quarantine, split = outputs(workdir)
    assert quarantine["video_id"].tolist() == written["quarantined"]
    table = written["table"].iloc[:-1]
    assert dict(zip(split["video_id"], split["partition"])) == dict(zip(table["FileName"], table["Split"].str.lower()))
    assert manifest["ef"].round(6).tolist() == table.sort_values("FileName")["EF"].round(6).tolist()
    (metrics, history), = train_study(workdir, "echonet_videomae").values()
    # VideoMAE on clips cached at 32 px from 112 px AVIs, validated every 2 updates
    assert metrics["task"]["name"] == "regression" and np.isfinite(metrics["metrics"]["mae"])
    assert len(history) > 2 and (history["step"].iloc[:-1] % 2 == 0).all()  # and the last update


def test_stall_catchers_joined_tables_and_the_outlined_roi(tmp_path):
    workdir, written = run_study("stall_catchers", tmp_path, only=True, extra=SMALL_DAG)
    manifest, quarantine, split = outputs(workdir)
    assert quarantine["video_id"].tolist() == written["quarantined"]
    assert quarantine["reason"][0].startswith("no outline of colour [255, 140, 0]")
    table = written["table"]
    expected = {r.filename[:-4]: (["FLOWING", "STALLED"][r.stalled], r.project_id) for r in table.itertuples()}
    assert {r.video_id: (r.label, r.group) for r in manifest.itertuples()} == {
        k: v for k, v in expected.items() if k not in written["quarantined"]}
    assert (manifest["mask_fraction"] < 0.5).all()  # only the vessel's inside is kept
    assert all(json.loads(c)[2] < 64 for c in manifest["crop"])  # cropped to the outline's box
    frames = np.load(workdir / manifest["frames_path"].iloc[0], mmap_mode="r")
    corner = frames[0, 0, 0]
    assert corner.tolist() == [0, 0, 255]  # outside the outline: the blue fill
    assert split.groupby("group")["partition"].nunique().max() == 1
    (metrics, history), = train_study(workdir, "stall_catchers").values()
    # Adam then Ranger, stem and layer1 never trained, the notebook's head on both reads, threshold 0.5
    assert history["stage"].tolist() == [1, 2] and metrics["monitor"] == "mcc"
    assert history["trains"].tolist() == ["head + last 6 of 12 backbone blocks"] * 2
    assert metrics["threshold_rule"] == "fixed" and metrics["threshold"] == 0.5
    # to the report, though its projects hold stalled and flowing vessels: the example scores vessels only
    assert (table.groupby("project_id")["stalled"].nunique() > 1).any()
    done = report_study(workdir, "stall_catchers")
    assert "patient_level" not in done["summary"] and np.isfinite(done["summary"]["pooled"]["metrics"]["mcc"])
    assert "pooled patient level" not in done["report"] and "Model: r2plus1d_stall" in done["report"]
