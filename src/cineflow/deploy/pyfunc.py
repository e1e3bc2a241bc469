"""A bundle as an MLflow pyfunc model, so a registry version and `mlflow models serve` work from it.

MLflow stores the model as code (`pyfunc_model.py`, "models from code") with the bundle folder as its artifact:
nothing is pickled. At load time the bundle is verified (checksums) and its fold models are loaded once; each
`predict` takes a table with a `path` column (files readable where the model is served) and returns the bundle's
predictions, as `cineflow-predict --bundle` gives them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
import torch

from cineflow.deploy.bundle import MANIFEST, Bundle, BundleError, load_models, open_bundle, predict_with_bundle
from cineflow.config import ConfigError, check_name
from cineflow.io import read_json

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")


SERVE_ROOT = "CINEFLOW_SERVE_ROOT"  # the folder a served model's request paths must resolve inside


def request_error(message: str) -> Exception:
    """The error a served model answers a bad request with: MLflow sends its message alone (no stack trace)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST

    return MlflowException(message, error_code=BAD_REQUEST)


def request_videos(model_input: pd.DataFrame, root: Path) -> pd.DataFrame:
    """(video_id, path) of a request once every path resolves inside `root` (symlinks followed) and every id is
    a safe name: a file's name is its id unless the request gives video_id (repeated names get ' (2)', ...)."""
    if "path" not in model_input:
        raise request_error(f"the input needs a `path` column of video files (columns: {list(model_input.columns)})")
    paths = model_input["path"].astype(str).tolist()
    for i, path in enumerate(paths):
        where = (root / path).resolve()
        if not where.is_relative_to(root):
            raise request_error(f"row {i}: path '{path}' is outside the folder this server reads ({SERVE_ROOT}); "
                                f"send paths inside it")
    if "video_id" in model_input:
        ids = model_input["video_id"].astype(str).tolist()
    else:
        seen: dict[str, int] = {}
        ids = []
        for path in paths:
            name = Path(path).name
            seen[name] = seen.get(name, 0) + 1
            ids.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    for i, video_id in enumerate(ids):
        try:
            check_name(video_id, f"row {i} video_id")
        except ConfigError as error:
            raise request_error(str(error)) from None
    if len(set(ids)) < len(ids):
        raise request_error("video_id values repeat; give each row its own")
    return pd.DataFrame({"video_id": ids, "path": paths})


def strict_json(table: pd.DataFrame) -> pd.DataFrame:
    """The table with NaN as None, so a served answer is strict JSON (null, not a bare NaN)."""
    return table.astype(object).where(table.notna(), None)


class BundleModel(mlflow.pyfunc.PythonModel):
    """The bundle's torch route behind MLflow's pyfunc interface. Request paths are read only inside the serving
    folder: $CINEFLOW_SERVE_ROOT, else the server's working folder."""

    bundle: Bundle
    models: list

    def load_context(self, context) -> None:
        self.bundle = open_bundle(context.artifacts["bundle"])
        self.models = load_models(self.bundle, torch.device("cpu"))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        root = Path(os.environ.get(SERVE_ROOT) or Path.cwd()).resolve()
        videos = request_videos(model_input, root)
        params = params or {}
        with tempfile.TemporaryDirectory(prefix="cineflow-pyfunc-") as work:
            try:
                table = predict_with_bundle(self.bundle, videos, work, torch.device("cpu"), "torch",
                                            int(params.get("seed", 0)), int(params.get("mc_dropout", 0)), root=root,
                                            models=self.models)
            except (BundleError, ConfigError, ValueError) as error:
                raise request_error(str(error)) from None
        return strict_json(table)


def log_bundle(bundle_dir: str | Path, name: str, registered_model: str | None = None,
               expect: str | None = None) -> tuple[str, str]:
    """Log the bundle as a pyfunc model in the active MLflow run (or a new one) and, with `registered_model`,
    register a version of it; returns (the model's URI, where its artifacts were stored). The tracking URI is
    MLflow's (MLFLOW_TRACKING_URI or mlflow.set_tracking_uri, else ./mlruns), e.g. a local `sqlite:///mlflow.db`
    registry. Only the files the manifest lists travel (a copy of them): nothing unverified, no
    `.snakemake_timestamp`.

    Args:
        bundle_dir: a built bundle (verified first).
        name: the logged model's name.
        registered_model: the registry name to add a version to, or None.
        expect: the manifest's published SHA-256, or None.
    """
    bundle = open_bundle(bundle_dir, expect)
    files = [MANIFEST, *read_json(bundle.root / MANIFEST)["files"]]
    with tempfile.TemporaryDirectory(prefix="cineflow-register-") as tmp:
        listed = Path(tmp) / "bundle"
        for file in files:
            (listed / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle.root / file, listed / file)
        with mlflow.start_run(nested=mlflow.active_run() is not None):
            info = mlflow.pyfunc.log_model(name=name, python_model=str(MODEL_CODE), artifacts={"bundle": str(listed)},
                                           registered_model_name=registered_model,
                                           tags={"cineflow.bundle_sha256": bundle.digest})
            where = mlflow.get_artifact_uri()
    return info.model_uri, where
