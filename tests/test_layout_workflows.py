"""Users' own data through the whole DAG: EchoNet-Dynamic and ImageFolder as published, strict mode,
and table problems stopping the run at parse time."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import TINY
from helpers.media import gradient_clip, write_dicom, write_echonet, write_image
from helpers.workflow import copy_repo, snakemake, write_config

pytestmark = pytest.mark.workflow


def tiny(**sections) -> dict:
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config.pop("demo")
    config["data"]["subgroups"] = []  # the demo's site and sex: these tables have neither
    for name, values in sections.items():
        config[name] = dict(config.get(name, {}), **values)
    return config


def test_echonet_folder_runs_with_its_published_split(tmp_path):
    data = tmp_path / "EchoNet-Dynamic"
    filelist = write_echonet(data)
    workdir = copy_repo(tmp_path / "repo")
    write_config(workdir, tiny(data={"layout": "echonet", "root": str(data), "ef_threshold": 50},
                               cache={"shards": 2, "size": 24, "fps": 25, "sector_mask": True},
                               evaluate={"eval_clips": "all", "block": 4}))
    snakemake(workdir)
    results = workdir / "results"
    split = pd.read_csv(results / "splits" / "fold_0.csv")
    assert not (results / "splits" / "fold_1.csv").exists()  # one fixed fold
    expected = dict(zip(filelist["FileName"], filelist["Split"].str.lower()))
    assert all(expected[v] == p for v, p in zip(split["video_id"], split["partition"]))
    manifest = pd.read_parquet(results / "manifest.parquet")
    assert (manifest["fps"] == 25).all() and (manifest["source_fps"] == 50).all()
    assert (manifest["n_frames"] == 8).all()  # 16 frames at 50 fps -> 8 at 25 fps
    assert manifest["ef"].notna().all() and (manifest["mask_fraction"] < 1).all()
    quarantine = pd.read_csv(results / "quarantine.csv")
    assert quarantine["video_id"].tolist() == ["0XMISSING"] and quarantine["reason"][0] == "file not found"
    metrics = json.loads((results / "tiny" / "fold_0" / "metrics.json").read_text())
    assert metrics["eval_clips"] == "all" and metrics["n_test"] == 6
    norm = json.loads((results / "splits" / "fold_0.norm.json").read_text())
    assert norm["n_videos"] == (split["partition"] == "train").sum()
    assert (results / "report.html").is_file()


def test_imagefolder_of_xrays_runs_as_one_frame_clips(tmp_path):
    data = tmp_path / "xrays"
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3), ("test", 3)):
        for cls, level in (("NORMAL", 60), ("PNEUMONIA", 190)):
            for k in range(n):
                image = np.clip(rng.normal(level, 25, (40, 40)), 0, 255).astype(np.uint8)
                write_image(data / split / cls / f"{split}{k}_{cls}.png", image)
    write_dicom(data / "test" / "NORMAL" / "p9_scan.dcm", np.full((1, 40, 40), 60, np.uint8))
    write_dicom(data / "train" / "NORMAL" / "p8_cine.dcm", gradient_clip(4, 40, rgb=False))  # a cine loop
    workdir = copy_repo(tmp_path / "repo")
    model = dict(TINY["models"]["tiny"], clip_length=1, clip_sampling="uniform", epochs=2)
    config = tiny(data={"layout": "imagefolder", "root": str(data), "classes": ["NORMAL", "PNEUMONIA"]},
                  cache={"shards": 2, "size": 24, "media": "image"})
    config["models"] = {"tiny": model}
    write_config(workdir, config)
    snakemake(workdir)
    results = workdir / "results"
    quarantine = pd.read_csv(results / "quarantine.csv")
    assert quarantine["video_id"].tolist() == ["train__NORMAL__p8_cine"]
    assert "a video (4 frames) where cache.media is 'image'" in quarantine["reason"][0]
    predictions = pd.read_csv(results / "tiny" / "fold_0" / "predictions.csv")
    assert len(predictions) == 7 and "test__NORMAL__p9_scan" in set(predictions["video_id"])
    assert (pd.read_parquet(results / "manifest.parquet")["n_frames"] == 1).all()
    cams = results / "tiny" / "fold_0" / "gradcam"
    index = pd.read_csv(cams / "index.csv")
    assert len(index) == 1 and index["file"][0].endswith(".png") and not list(cams.glob("*.mp4"))  # images: PNG
    assert (cams / index["file"][0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = cv2.imread(str(cams / index["file"][0])).shape  # the 40 px image itself, cached at 24
    assert width == 80 and 40 < height < 80  # under the caption's band
    html = (results / "report.html").read_text()
    assert 'alt="Grad-CAM of ' in html and "<video" not in html
    assert 'id="leakage-warning"' in html and "images of one patient may sit in different partitions" in html


def test_strict_turns_quarantine_into_a_failure(tmp_path):
    workdir = copy_repo(tmp_path)
    write_config(workdir, tiny(data={"strict": True}, demo=TINY["demo"]))
    out = snakemake(workdir, "results/manifest.parquet", check=False)
    assert out.returncode != 0
    log = (workdir / "results" / "logs" / "manifest.log").read_text()
    assert "data.strict is on and 1 input(s) are unusable" in log and "corrupt_0.avi" in log
    assert not (workdir / "results" / "manifest.parquet").exists()


@pytest.mark.parametrize("row, message", [
    ({"label": "MILD"}, "row 3 (path 'b.avi'): label 'MILD' is not among data.classes"),
    ({"group": ""}, "row 3 (path 'b.avi'): missing group"),
    ({"path": "../outside.avi"}, "row 3 (path '../outside.avi'): path leaves the data root"),
    ({"ef": "NaN"}, "row 3 (path 'b.avi'): ef is empty, NaN or not a number"),
    ({"path": "a.avi"}, "duplicate video_id ['a'] at rows [1, 3]"),
])
def test_table_problems_stop_the_run_at_parse_time(tmp_path, row, message):
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"path": "a.avi", "label": "NORMAL", "group": "p1", "ef": 60},
            {"path": "c.avi", "label": "REDUCED", "group": "p2", "ef": 30},
            dict({"path": "b.avi", "label": "REDUCED", "group": "p3", "ef": 35}, **row)]
    pd.DataFrame(rows).to_csv(data / "labels.csv", index=False)
    workdir = copy_repo(tmp_path / "repo")
    write_config(workdir, tiny(data={"layout": "table", "root": str(data), "labels": str(data / "labels.csv")}))
    out = snakemake(workdir, "-n", check=False)
    assert out.returncode != 0
    assert message in out.stdout + out.stderr
