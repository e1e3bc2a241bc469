"""The HTML report and Snakemake's report of one tiny run.

The run is the session's `workflow` fixture (conftest.py), in a copy of the repository.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from helpers import REPO, browser
from helpers.tables import assert_clean
from helpers.workflow import snakemake

pytestmark = pytest.mark.workflow


def test_report_is_self_contained(workflow):
    html = (workflow / "results" / "report.html").read_text()
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html)
    tested = re.sub(r'<table class="table training-cams">.*?</table>', "", html, flags=re.S)
    videos = re.findall(r'<video[^>]*src="data:video/mp4;base64,([^"]+)"', tested)
    assert len(videos) == 4  # one per fold and model
    assert base64.b64decode(videos[0])[4:8] == b"ftyp"  # a real MP4
    assert len(re.findall(r'<img[^>]*src="data:image/png;base64,', html)) >= 3
    for needle in ("ROC", "Confusion", "Learning curves", "Provenance", "Quarantined", "fold"):
        assert needle in html
    assert "leakage-warning" not in html  # the demo's groups are patients
    # where each fold's results came from: its config hash, and the device that trained and evaluated it
    metrics = json.loads((workflow / "results" / "tiny_ef" / "fold_1" / "metrics.json").read_text())
    assert "Where each result came from" in html and metrics["provenance"]["config_hash"] in html
    assert f"cpu on {metrics['provenance']['hardware']['host']}" in html


def test_models_side_by_side_are_compared_in_the_report(workflow):
    results = workflow / "results"
    regression = json.loads((results / "tiny_ef" / "summary.json").read_text())
    assert {"mae", "rmse", "r2", "pearson_r"} <= set(regression["metrics"])
    fold = json.loads((results / "tiny_ef" / "fold_0" / "metrics.json").read_text())
    assert fold["task"]["name"] == "regression" and fold["loss"] == "weighted_mse" and fold["monitor"] == "mae"
    predictions = pd.read_csv(results / "tiny_ef" / "fold_0" / "predictions.csv")
    assert np.allclose(predictions["error"], predictions["prediction"] - predictions["target"])
    assert (results / "tiny_ef" / "fold_0" / "last.pt").is_file()
    html = (results / "report.html").read_text()
    table = html[html.index('id="comparison"'):html.index("</table>", html.index('id="comparison"'))]
    assert "tiny_ef" in table and "mae" in table and "roc_auc" in table
    # a regression model is not ranked beside a binary one: no best model, no paired test
    assert "★" not in table and "regression of ef" in table and "binary (NORMAL, REDUCED)" in table
    assert "Best " not in html[:html.index('id="comparison"')] and "No pair to compare" in html
    assert "Prediction vs truth" in html


def test_report_shows_external_validation_subgroups_and_model_cards(workflow):
    html = (workflow / "results" / "report.html").read_text()
    table = html[html.index('id="external-validation"'):html.index("</table>", html.index('id="external-validation"'))]
    assert "external: site_c" in table and "tiny_ef" in table and "in distribution" in table
    assert html.count('class="table external-checks"') == 2 and "frame rate" in html
    assert len(re.findall(r'<img class="plot forest"[^>]*src="data:image/png;base64,', html)) == 4  # 2 per model
    assert 'href="tiny/model_card.md"' in html and 'href="tiny_ef/model_card.md"' in html
    assert "# Model card: tiny_ef" in html  # shown inline too
    assert "too few for a CI" in html


def test_report_opens_in_headless_chromium(workflow):
    """No console errors, every video playable with a duration, every plot decoded, every table clean (headers,
    whole-number counts); a screenshot to look at."""
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    shot = workflow / "results" / "report-screenshot.png"
    page = browser.open_report(workflow / "results" / "report.html", shot)
    assert page["errors"] == [], page["errors"]
    drawn = sum(len(pd.read_csv(p)) for p in (workflow / "results" / "tiny" / "fold_0" / "training_gradcam").glob(
        "epoch_*/index.csv"))
    assert drawn and len(page["videos"]) == 4 + drawn  # the test videos' CAMs and those drawn during training
    for video in page["videos"]:
        assert video["error"] is None and video["readyState"] >= 3 and video["duration"] > 0, video
    assert len(page["images"]) >= 11
    for image in page["images"]:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    assert len(page["tables"]) >= 10
    for table in page["tables"]:
        assert_clean(table)
    assert shot.read_bytes()[:4] == b"\x89PNG"
    (REPO / "results").mkdir(exist_ok=True)
    shutil.copy(shot, REPO / "results" / "test-report-screenshot.png")


def test_report_lists_mistakes_with_links_to_their_cams(workflow):
    html = (workflow / "results" / "report.html").read_text()
    oof = pd.read_parquet(workflow / "results" / "tiny" / "oof_predictions.parquet")
    assert f"Misclassified videos ({int((~oof['correct']).sum())})" in html
    links = re.findall(r'<a href="#(cam-[^"]+)">', html)
    assert links, "no mistake links to its Grad-CAM"  # the picks include the most confident wrong ones
    for anchor in links:
        assert f'id="{anchor}"' in html  # every link lands on a Grad-CAM


def test_snakemake_report_zip_holds_the_report_items(workflow):
    snakemake(workflow, "--report", "results/snakemake-report.zip")
    names = zipfile.ZipFile(workflow / "results" / "snakemake-report.zip").namelist()
    assert sum(n.endswith(".mp4") for n in names) == 4
    assert sum(n.endswith("/summary.json") for n in names) == 2
    assert any(n.endswith("/roc.png") for n in names) and any(n.endswith("/bland_altman.png") for n in names)
    assert any("/data/raw/" in n and n.endswith("/report.html") for n in names)  # ours, as an item


def test_report_shows_the_grad_cams_drawn_during_training(workflow):
    """models.tiny.gradcam_every: 4 of its 8 epochs: the same val videos after epochs 4 and 8, in the fold's
    folder and in the report's training part."""
    folder = workflow / "results" / "tiny" / "fold_0" / "training_gradcam"
    history = pd.read_csv(workflow / "results" / "tiny" / "fold_0" / "history.csv")
    epochs = [e for e in (4, 8) if e <= len(history)]
    assert sorted(p.name for p in folder.glob("epoch_*")) == [f"epoch_{e:03d}" for e in epochs]
    index = pd.concat([pd.read_csv(folder / f"epoch_{e:03d}" / "index.csv", dtype=str) for e in epochs])
    assert index.groupby("epoch")["video_id"].apply(tuple).nunique() == 1  # the same videos every time
    html = (workflow / "results" / "report.html").read_text()
    table = html[html.index('class="table training-cams"'):html.index("</table>", html.index("training-cams"))]
    assert len(re.findall(r'<video[^>]*src="data:video/mp4;base64,', table)) == len(index)
    assert all(f"epoch {e}" in table for e in epochs) and all(v in table for v in index["video_id"])
    assert not list((workflow / "results" / "tiny_ef" / "fold_0" / "training_gradcam").glob("epoch_*"))  # none
