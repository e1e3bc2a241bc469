"""What reruns after a change, and what does not: the DAG of one tiny run.

The run is the session's `workflow` fixture (conftest.py), in a copy of the repository.
"""

from __future__ import annotations

import pytest
import yaml

from helpers.workflow import CONFIG, config_in, edited, planned, snakemake

pytestmark = pytest.mark.workflow


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


def test_a_model_of_its_own_size_gets_its_own_cache_and_nothing_else_reruns(workflow):
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["models"]["tiny_ef"]["size"] = 20
    with config_in(workflow, config):
        jobs = planned(workflow)
    assert jobs.get("cache_shard_model") == 2 and jobs.get("manifest_model") == 1
    assert jobs.get("normalisation_model") == 2 and jobs.get("train") == 2  # tiny_ef's folds only
    assert not {"cache_shard", "manifest", "splits", "normalisation"} & set(jobs)


def test_fixed_normalisation_needs_no_fold_statistics(workflow):
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["models"]["tiny"]["normalise"] = "imagenet"
    with config_in(workflow, config):
        jobs = planned(workflow)
        dag = snakemake(workflow, "-n", "--forceall", "results/tiny/fold_0/model.pt").stdout
    assert jobs.get("train") == 2 and not {"normalisation", "cache_shard", "splits"} & set(jobs)
    assert "rule normalisation" not in dag and "rule train" in dag


def test_report_code_reruns_only_the_report(workflow):
    with edited(workflow / "src" / "cineflow" / "report" / "html.py"):
        jobs = planned(workflow)
    assert set(jobs) == {"report", "all"}


def test_library_code_reruns_the_rules_that_use_it(workflow):
    with edited(workflow / "src" / "cineflow" / "models" / "tiny3d.py"):  # the family the tiny model uses
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


def test_adding_an_external_set_reruns_nothing_upstream(workflow):
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["external"]["site_d"] = {"layout": "demo", "root": "resources/demo_site_d", "seed": 12,
                                    "demo": {"n_patients": 4, "sites": ["D"], "gain": 0.8}}
    with config_in(workflow, config):
        jobs = planned(workflow)
    assert jobs.pop("external") == 2  # the new set, once per model
    assert set(jobs) <= {"external_demo_data_site_d", "model_card", "report", "all"}


def test_one_fold_of_a_repeat_by_its_target_name(workflow):
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["splits"]["repeats"] = 2
    with config_in(workflow, config):
        jobs = planned(workflow, "results/tiny/fold_1_r1/metrics.json")
        everything = planned(workflow)
    assert jobs == {"splits_repeat": 1, "normalisation": 1, "train": 1, "evaluate": 1}
    # repeat 0 stays as it was: only the new repeat's folds train, and the report keeps repeat 0's Grad-CAMs
    assert everything["train"] == 4 and everything["splits_repeat"] == 1
    assert not {"splits", "gradcam", "cache_shard", "manifest"} & set(everything)


def test_naming_another_subgroup_column_retrains_nothing(workflow):
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["data"]["subgroups"] = ["site"]
    with config_in(workflow, config):
        jobs = planned(workflow)
    assert set(jobs) == {"subgroups", "model_card", "report", "all"} and jobs["subgroups"] == 2


def test_the_bundle_reruns_when_what_it_holds_changes_and_only_then(workflow):
    """The bundle holds the fold models, their thresholds and calibrations, references, summary, card, the
    evaluation settings prediction uses and the export choices: a change of one of those rebuilds it; the report's
    code does not."""
    snakemake(workflow, "results/tiny/bundle")
    assert planned(workflow, "results/tiny/bundle") == {}
    with edited(workflow / "src" / "cineflow" / "report" / "html.py"):
        assert planned(workflow, "results/tiny/bundle") == {}
    for section, key, value in (("deploy", "program", False), ("evaluate", "threshold", "fixed")):
        config = yaml.safe_load(yaml.safe_dump(CONFIG))
        config.setdefault(section, {})[key] = value
        with config_in(workflow, config):
            jobs = planned(workflow, "results/tiny/bundle")
        assert jobs.get("bundle") == 1 and "train" not in jobs, (key, jobs)
