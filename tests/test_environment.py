"""The software environments agree: pyproject.toml, the rules' conda file and the lock file."""

import re

import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from helpers import REPO

# the workflow driver runs outside the rules' environment
DRIVER_ONLY = {"snakemake"}


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def requirements(lines) -> dict[str, SpecifierSet]:
    reqs = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): r.specifier for r in reqs}


def test_conda_env_lists_the_same_packages_and_bounds_as_pyproject():
    meta = project()
    extras = meta["optional-dependencies"]
    wanted = requirements(meta["dependencies"] + extras["tracking"] + extras["deploy"])
    wanted = {k: v for k, v in wanted.items() if k not in DRIVER_ONLY}
    for path in sorted((REPO / "envs").glob("*.yaml")):
        env = yaml.safe_load(path.read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        assert requirements(pip) == wanted, path.name
        python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
        floor = re.search(r">=([\d.]+)", meta["requires-python"]).group(1)
        assert SpecifierSet(python.removeprefix("python")).contains(floor), (path.name, python)


def test_lock_file_pins_every_dependency_within_its_bounds():
    meta = project()
    lines = [line for line in (REPO / "requirements.lock").read_text().splitlines()
             if line and not line.startswith("#")]
    pinned = {canonicalize_name(name): version for name, version in (line.split("==") for line in lines)}
    extras = meta["optional-dependencies"]
    for spec in meta["dependencies"] + extras["tracking"] + extras["test"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not in requirements.lock"
        assert req.specifier.contains(pinned[name], prereleases=True), (req.name, pinned[name], str(req.specifier))
