"""What produced a result: config hash, code version, package versions, hardware."""

from __future__ import annotations

import ast
import hashlib
import json
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

PACKAGE_DIR = Path(__file__).resolve().parent
TRACKED_PACKAGES = (
    "cineflow", "torch", "torchvision", "timm", "numpy", "pandas", "scikit-learn",
    "opencv-python-headless", "av", "grad-cam", "snakemake", "matplotlib",
)


def config_hash(config: Any) -> str:
    """Stable short hash of a JSON-able config (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@lru_cache(maxsize=1)
def source_hash() -> str:
    """Hash of the library sources: what the code *is*, whatever git says about it."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@lru_cache(maxsize=1)
def code_version() -> str:
    """git describe of the checkout when there is one, plus the source hash."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=PACKAGE_DIR, capture_output=True,
            text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        described = "nogit"
    return f"{described}+src.{source_hash()}"


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def hardware(device: Any = "cpu") -> dict[str, Any]:
    """The machine and the device a job ran on; under SLURM also its job id and the GPUs it was given."""
    import os

    import torch

    info = {"device": str(device), "host": platform.node(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        device = torch.device(device)
        info["gpu"] = torch.cuda.get_device_name(device.index or 0)
    for name in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES"):
        if name in os.environ:
            info[name.lower()] = os.environ[name]
    return info


def provenance(config: Any, device: Any = "cpu") -> dict[str, Any]:
    """The block every result file carries."""
    return {
        "config": config,
        "config_hash": config_hash(config),
        "code_version": code_version(),
        "packages": package_versions(),
        "hardware": hardware(device),
    }


def module_sources(module: str, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Source files of `module` and every cineflow module it imports, transitively.

    Snakemake does not track imported code, so rules list these files as inputs: editing a
    module reruns exactly the rules whose scripts reach it.
    """
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or _module_path(name, package_dir) is None:
            continue
        seen.add(name)
        todo += _imports(name, package_dir)
    return sorted(str(_module_path(n, package_dir)) for n in seen)


@lru_cache(maxsize=None)
def _imports(name: str, package_dir: Path) -> list[str]:
    """The package's modules that module `name` imports (parsed once per process: every rule asks)."""
    package = package_dir.name
    path = _module_path(name, package_dir)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == package]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside the package
                base = name.rsplit(".", node.level)[0] if path.name != "__init__.py" else name
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] == package:
                found.append(target)
                found += [f"{target}.{a.name}" for a in node.names]
    return found


@lru_cache(maxsize=None)
def _module_path(name: str, package_dir: Path) -> Path | None:
    parts = name.split(".")
    if parts[0] != package_dir.name:
        return None
    rel = Path(*parts[1:]) if len(parts) > 1 else Path()
    for candidate in (package_dir / rel.with_suffix(".py") if parts[1:] else None, package_dir / rel / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None
