"""What produced a result: config hash, code version, package versions, hardware."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
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


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks (weights files run to gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """The machine and the device a job ran on; under SLURM also its job id and the GPUs it was given.

    CUDA is asked about only where the job loaded torch: a job that did not (summaries, plots, the report)
    ran on the CPU whatever the machine holds, so they leave `cuda` out: importing torch just to ask
    costs ~2 s a job."""
    info = {"device": str(device), "host": platform.node(), "platform": platform.platform(),
            "cpu_count": os.cpu_count()}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["cuda"] = torch.cuda.is_available()
    if info.get("cuda"):
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
