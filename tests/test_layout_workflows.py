"""Users' own data through the whole DAG: EchoNet-Dynamic and ImageFolder as published, strict mode,
and table problems stopping the run at parse time."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
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


def test_an_archive_with_phi_in_headers_and_pixels_leaves_none_of_it_in_results(tmp_path):
    """data.deidentify on a DICOM export whose headers name the patient and whose frames carry the name burned
    in above the sector: no header value in any file under results/ (cache, splits, predictions, CAMs, report,
    bundle), the banner's pixels blank in the cache and the CAMs, the groups hashed yet patients kept together,
    and the bundle applying the same rules to an upload."""
    from cineflow.deploy.bundle import load_models, open_bundle
    from cineflow.deploy.serve import predict_upload
    from cineflow.io import read_parquet
    from helpers.media import BANNER, PHI, write_phi_echo

    data, rows = tmp_path / "export", []
    for patient in range(8):
        for k in range(2):
            path = f"study_{patient}/IM_{k + 1:04d}.dcm"
            write_phi_echo(data / path, patient=patient, seed=10 * patient + k)
            rows.append({"file": path, "label": ["NORMAL", "REDUCED"][patient % 2]})
    write_phi_echo(data / "study_9" / "IM_0001.dcm", patient=9, still=True)  # no sector: quarantined
    rows.append({"file": "study_9/IM_0001.dcm", "label": "NORMAL"})
    pd.DataFrame(rows).to_csv(data / "labels.csv", index=False)
    workdir = copy_repo(tmp_path / "repo")
    salt = tmp_path / "keys" / "salt"
    write_config(workdir, tiny(
        data={"layout": "table", "root": str(data), "labels": str(data / "labels.csv"),
              "columns": {"path": "file", "label": "label", "group": "dicom:PatientID"},
              "deidentify": {"enabled": True, "salt_file": str(salt)}},
        cache={"shards": 2, "size": 32, "color": "grey", "sector_mask": True}, evaluate={"bootstrap": 50}))
    snakemake(workdir, "results/report.html", "results/tiny/bundle")
    results = workdir / "results"
    values = [f"{v}{p:02d}" for p in range(10) for k, v in PHI.items() if not k.endswith("Date")]
    values += [PHI["PatientBirthDate"], "Jonathan", "Elsewhere", "Gregory", "operator notes"]
    leaks = {str(f.relative_to(results)): v for f in results.rglob("*") if f.is_file()
             for v in values if v.encode() in f.read_bytes()}
    assert not leaks, leaks
    manifest = read_parquet(results / "manifest.parquet")
    assert manifest["group"].str.startswith("pid-").all() and manifest["group"].nunique() == 8
    split = pd.read_csv(results / "splits" / "fold_0.csv")
    assert split.groupby("group")["partition"].nunique().max() == 1  # a patient's loops stay together
    audit = pd.read_csv(results / "deidentification.csv").set_index("video_id")
    assert len(audit) == 17 and (audit["burned_in_annotation"] == "YES").all()
    assert "BurnedInAnnotation YES" in audit.loc["study_9__IM_0001", "reason"]
    assert audit.drop("study_9__IM_0001")["tags_changed"].str.contains("PatientName").all()
    for row in manifest.itertuples():  # the banner: 64 x 96 -> 21 x 32 with its aspect, 5 rows of padding above
        assert np.load(workdir / row.frames_path)[:, 5:8, :11].max() == 0
    import av

    cams = list(results.glob("tiny/fold_*/gradcam/*.mp4"))
    assert cams
    for cam in cams:
        with av.open(str(cam)) as container:
            frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
        band = frames[0].shape[0] - 64  # the caption band above the 64-row source panels
        rows_, cols = BANNER
        for frame in frames:
            for left in (0, 96):  # the source panel and the overlay panel
                assert frame[band + rows_.start: band + rows_.stop, left + cols.start: left + cols.stop].max() < 60
    assert "De-identification" in (report := (results / "report.html").read_text())
    assert "PS3.15 Annex E basic profile" in report and "17 file(s) audited" in report
    bundle = open_bundle(results / "tiny" / "bundle")
    upload = write_phi_echo(tmp_path / "upload.dcm", patient=42).read_bytes()
    answer = predict_upload(bundle, load_models(bundle, torch.device("cpu")), upload, ".dcm", torch.device("cpu"))
    with av.open(__import__("io").BytesIO(answer.cam)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="gray")
    assert first[first.shape[0] - 64:][:10, :36].max() < 60  # the upload's banner is blank in the app's CAM
    assert salt.is_file() and not str(salt).startswith(str(results))
