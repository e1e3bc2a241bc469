"""A bundle as an MLflow pyfunc model, so a registry version and `mlflow models serve` work from it.

MLflow stores the model as code (`pyfunc_model.py`, "models from code") with the bundle folder as its artifact:
nothing is pickled. At load time the bundle is verified (checksums) and its fold models are loaded once; each
`predict` takes a table with a `path` column (files readable where the model is served) and returns the bundle's
predictions, as `cineflow-predict --bundle` gives them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd
import torch

from cineflow.deploy.bundle import Bundle, load_models, open_bundle, predict_with_bundle

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")


class BundleModel(mlflow.pyfunc.PythonModel):
    """The bundle's torch route behind MLflow's pyfunc interface."""

    bundle: Bundle
    models: list

    def load_context(self, context) -> None:
        self.bundle = open_bundle(context.artifacts["bundle"])
        self.models = load_models(self.bundle, torch.device("cpu"))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        if "path" not in model_input:
            raise ValueError(f"the input needs a `path` column of video files (columns: {list(model_input.columns)})")
        table = model_input.copy()
        if "video_id" not in table:
            table["video_id"] = [f"video_{i}" for i in range(len(table))]
        params = params or {}
        with tempfile.TemporaryDirectory(prefix="cineflow-pyfunc-") as work:  # relative paths: from the cwd
            return predict_with_bundle(self.bundle, table[["video_id", "path"]].astype(str), work, torch.device("cpu"),
                                       "torch", int(params.get("seed", 0)), int(params.get("mc_dropout", 0)),
                                       root=Path.cwd(), models=self.models)


def log_bundle(bundle_dir: str | Path, name: str, registered_model: str | None = None) -> str:
    """Log the bundle as a pyfunc model in the active MLflow run (or a new one) and, with `registered_model`,
    register a version of it; returns the model's URI. The tracking URI is MLflow's (MLFLOW_TRACKING_URI or
    mlflow.set_tracking_uri), e.g. a local `sqlite:///mlflow.db` registry.

    Args:
        bundle_dir: a built bundle (verified first).
        name: the logged model's name.
        registered_model: the registry name to add a version to, or None.
    """
    manifest_digest = open_bundle(bundle_dir).digest
    with mlflow.start_run(nested=mlflow.active_run() is not None):
        info = mlflow.pyfunc.log_model(name=name, python_model=str(MODEL_CODE),
                                       artifacts={"bundle": str(Path(bundle_dir).resolve())},
                                       registered_model_name=registered_model,
                                       tags={"cineflow.bundle_sha256": manifest_digest})
    return info.model_uri
