"""The code MLflow stores for a bundle's pyfunc model (models from code: no pickle); see deploy.pyfunc."""

import mlflow

from cineflow.deploy.pyfunc import BundleModel

mlflow.models.set_model(BundleModel())
