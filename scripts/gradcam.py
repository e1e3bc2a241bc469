"""Rule gradcam: CAM videos of selected test videos of one fold."""

import json

import pandas as pd

from cineflow.config import GradcamConfig
from cineflow.devices import job_device
from cineflow.gradcam import render_fold
from cineflow.logs import to_log
from cineflow.seeding import seed_everything
from cineflow.summary import read_predictions

with to_log(snakemake.log[0]), job_device() as device:
    seed_everything(snakemake.params.seed, snakemake.threads)
    with open(snakemake.input.metrics, encoding="utf-8") as fh:
        threshold = json.load(fh)["threshold"]
    index = render_fold(snakemake.input.model, read_predictions(snakemake.input.predictions),
                        pd.read_parquet(snakemake.input.manifest), threshold,
                        GradcamConfig.from_dict(snakemake.params.gradcam), snakemake.output[0], device)
    print(index.to_string())
