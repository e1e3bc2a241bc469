"""The five source studies' data, placed unchanged at each example's data.root, run through the example
config up to the first fold's split: rows, labels, groups, originals vs augmented copies and what was
quarantined, as the issue's done-when command runs it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import REPO, job_counts
from helpers.studies import LUNG_CLASSES, STUDIES
from helpers.workflow import copy_repo, snakemake

pytestmark = pytest.mark.workflow


def run_study(study: str, tmp_path, *targets: str) -> tuple:
    """(workdir, what the generator wrote) after the example ran to results/splits/fold_0.csv."""
    workdir = copy_repo(tmp_path / "repo")
    config = yaml.safe_load((REPO / "config" / "examples" / f"{study}.yaml").read_text())
    written = STUDIES[study](workdir / config["data"]["root"])
    snakemake(workdir, "--configfile", f"config/examples/{study}.yaml", "--replace-workflow-config",
              "results/splits/fold_0.csv", *targets)
    return workdir, written


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


def test_echo_quality_groups_from_the_dicom_header_and_labels_mapped(tmp_path):
    workdir, written = run_study("echo_quality", tmp_path)
    manifest, quarantine, split = outputs(workdir)
    assert quarantine["video_id"].tolist() == written["quarantined"] and quarantine["reason"][0] == "file not found"
    table = written["table"].iloc[:-1]
    assert len(manifest) == len(table)
    by_id = manifest.set_index("video_id")
    for row in table.itertuples():
        video_id = row.video_path.split("/")[-1][:-4]
        assert by_id.loc[video_id, "label"] == ["POOR", "GOOD"][row.quality_score]
        assert by_id.loc[video_id, "group"] == f"PAT{int(video_id[5:7]):03d}"  # PatientID, not the file
    assert manifest["group"].nunique() == 10 < len(manifest)
    assert split.groupby("group")["partition"].nunique().max() == 1


def test_lung_xray_kaggle_folders_with_spaces_and_a_cache_per_input_size(tmp_path):
    workdir, written = run_study("lung_xray", tmp_path)
    manifest, quarantine, split = outputs(workdir)
    assert quarantine["video_id"].tolist() == written["quarantined"]
    assert len(manifest) == len(written["files"]) and sorted(manifest["label"].unique()) == LUNG_CLASSES
    assert not (workdir / "results" / "splits" / "fold_1.csv").exists()  # the archive's own split: one fold
    partition_of = {f"{f.parts[-3]}__{f.parts[-2]}__{f.stem}": f.parts[-3] for f in written["files"]}
    assert dict(zip(split["video_id"], split["partition"])) == partition_of
    assert (manifest["height"] != manifest["height"].iloc[0]).any()  # mixed native sizes, one cached size
    frames = np.load(workdir / manifest["frames_path"].iloc[0], mmap_mode="r")
    assert frames.shape[1:] == (224, 224, 3)
    # EfficientNet-V2 at 384 px trains from a cache of its own; ConvNeXt-V2 from the shared one
    plan = job_counts(snakemake(workdir, "-n", "--configfile", "config/examples/lung_xray.yaml",
                                "--replace-workflow-config", "results/efficientnetv2/fold_0/model.pt",
                                "results/convnextv2/fold_0/model.pt").stdout)
    assert plan["cache_shard_model"] == 8 and plan["manifest_model"] == 1 and plan["train"] == 2
    assert "cache_shard" not in plan  # the shared cache is built already


def test_echonet_dynamic_as_published(tmp_path):
    workdir, written = run_study("echonet_videomae", tmp_path)
    manifest, quarantine, split = outputs(workdir)
    assert quarantine["video_id"].tolist() == written["quarantined"]
    table = written["table"].iloc[:-1]
    assert dict(zip(split["video_id"], split["partition"])) == dict(zip(table["FileName"], table["Split"].str.lower()))
    assert manifest["ef"].round(6).tolist() == table.sort_values("FileName")["EF"].round(6).tolist()


def test_stall_catchers_joined_tables_and_the_outlined_roi(tmp_path):
    workdir, written = run_study("stall_catchers", tmp_path)
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
