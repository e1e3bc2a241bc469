from pathlib import Path

from cineflow.provenance import code_version, config_hash, module_sources, package_versions


def names(module):
    return {Path(p).name for p in module_sources(module)}


def test_module_sources_follow_imports_transitively():
    train = names("cineflow.trainer")
    assert {"trainer.py", "models.py", "data.py", "cache.py", "readers.py", "metrics.py", "checkpoint.py",
            "provenance.py"} <= train
    assert "report.py" not in train and "gradcam.py" not in train
    assert "report.py" in names("cineflow.report")
    assert "trainer.py" not in names("cineflow.report")


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_versions_are_recorded():
    versions = package_versions()
    assert versions["torch"] != "not installed" and "python" in versions
    assert "+src." in code_version()
