"""`make demo` itself: the default config on the built-in demo data, end to end (its own file, so the
suite's workers run it beside the tiny-config workflow tests)."""

from __future__ import annotations

import json

import pytest

from helpers.tables import assert_clean, html_tables
from helpers.workflow import copy_repo, snakemake

pytestmark = pytest.mark.workflow


def test_demo_with_the_default_config_learns(tmp_path):
    """`make demo`'s workflow and config: held-out patients are classified from motion alone."""
    workdir = copy_repo(tmp_path)
    # about 10 minutes alone on 2 cores (README), longer beside the suite's other worker
    snakemake(workdir, "results/report.html", timeout=2400)
    summary = json.loads((workdir / "results" / "tiny3d" / "summary.json").read_text())
    assert summary["metrics"]["roc_auc"]["mean"] >= 0.90, summary["metrics"]["roc_auc"]
    assert len(summary["metrics"]["roc_auc"]["per_fold"]) == 3
    # the demo's two models make a pair: DeLong and the paired bootstraps on the same videos
    comparison = json.loads((workdir / "results" / "comparison.json").read_text())
    tests = {(p["metric"], p["test"]) for p in comparison["pairs"]}
    assert ("roc_auc", "delong") in tests and ("roc_auc", "paired_bootstrap") in tests
    assert all(p["models"] == ["tiny3d", "tiny3d_narrow"] for p in comparison["pairs"])
    # the report's tables, the paired comparison's among them: named headers, whole counts, values not objects
    tables = html_tables((workdir / "results" / "report.html").read_text())
    for table in tables:
        assert_clean(table)
    pairs = next(t for t in tables if t["id"] == "paired-comparison")["rows"]
    assert len(pairs) == 1 + len(comparison["pairs"]) and all(" vs " in row[4] for row in pairs[1:])
    # the external site: other patients, a darker scanner; the ensemble still separates the classes
    external = json.loads((workdir / "results" / "external" / "site_c" / "tiny3d" / "metrics.json").read_text())
    assert external["n"] == 30 and external["metrics"]["roc_auc"] >= 0.85
    subgroups = json.loads((workdir / "results" / "tiny3d" / "subgroups.json").read_text())
    assert [v["value"] for v in subgroups["subgroups"]["site"]] == ["A", "B"]
    assert all(v["ci"] for v in subgroups["subgroups"]["site"])  # 45 patients a site: CIs
    assert (workdir / "results" / "tiny3d_narrow" / "model_card.md").is_file()
    # the decisions a clinician can use: each fold recalibrated on its val partition, so the pooled folds share
    # one scale; patient-level results; a decision curve; the two widths selected by nested cross-validation
    calibration = summary["calibration"]["pooled"]
    assert calibration["after"]["ece"] < calibration["before"]["ece"] / 2
    assert calibration["after"]["roc_auc"] > calibration["before"]["roc_auc"]
    assert abs(summary["pooled"]["metrics"]["roc_auc"] - summary["metrics"]["roc_auc"]["mean"]) < 0.03
    assert summary["patient_level"]["n"] == summary["patient_level"]["n_groups"] == 90
    assert len(summary["pooled"]["decision_curve"]["model"]) == 99 and "model_ci" in summary["pooled"]["decision_curve"]
    assert {p["level"] for p in comparison["pairs"]} == {"video", "patient"}
    nested = json.loads((workdir / "results" / "sweeps" / "tiny3d.json").read_text())
    assert len(nested["per_fold"]) == 3 and nested["choice"] in ("tiny3d", "tiny3d_narrow")
    assert (workdir / "results" / "tiny3d" / "fold_2i1" / "metrics.json").is_file()
    report = (workdir / "results" / "report.html").read_text()
    assert "Nested model selection: sweep of tiny3d" in report and 'id="calibration-tiny3d"' in report
    assert "Decision curve of tiny3d" in report
