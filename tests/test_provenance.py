from pathlib import Path

from cineflow.provenance import code_version, config_hash, package_versions
from cineflow.sources import script_sources
from helpers import REPO


def names(script):
    return {str(Path(p).relative_to(REPO / "src" / "cineflow")) for p in script_sources(REPO / "scripts" / script)}


def test_a_rules_code_is_what_its_script_imports_transitively():
    train = names("train.py")
    assert {"train/fold.py", "train/loop.py", "train/launch.py", "models/architectures.py", "models/tiny3d.py",
            "data/clips.py", "data/store.py", "tasks/metrics.py", "models/trained.py",
            "provenance.py"} <= train
    assert "report/html.py" not in train and "evaluate/gradcam.py" not in train
    report = names("report.py")
    assert "report/html.py" in report and "train/fold.py" not in report


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_versions_are_recorded():
    versions = package_versions()
    assert versions["torch"] != "not installed" and "python" in versions
    assert "+src." in code_version()


def test_jobs_without_torch_do_not_load_it_for_their_provenance():
    """The summaries, plots and report record the host without importing torch (~2 s a job); a job that
    loaded torch also records whether CUDA was there."""
    import subprocess
    import sys

    probe = ("import sys; from cineflow.provenance import provenance; hw = provenance({})['hardware']; "
             "assert 'torch' not in sys.modules and 'cuda' not in hw and hw['cpu_count'], hw; "
             "import torch; hw = provenance({}, 'cpu')['hardware']; assert hw['cuda'] is torch.cuda.is_available()")
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=120)
