"""Rule gradcam: CAM videos of selected test videos of one fold."""

from pathlib import Path

from cineflow.config import GradcamConfig, TrackingConfig
from cineflow.devices import job_device
from cineflow.evaluate.gradcam import render_fold
from cineflow.evaluate.summary import read_predictions
from cineflow.io import read_json, read_parquet
from cineflow.logs import to_log
from cineflow.seeding import seed_everything
from cineflow.tracking import log_fold_results

with to_log(snakemake.log[0]), job_device() as device:
    seed_everything(snakemake.params.seed, snakemake.threads, snakemake.config["deterministic"])
    index = render_fold(snakemake.input.model, read_predictions(snakemake.input.predictions),
                        read_parquet(snakemake.input.manifest), read_json(snakemake.input.metrics)["threshold"],
                        GradcamConfig.from_dict(snakemake.params.gradcam), snakemake.output[0], device)
    print(index.to_string())
    log_fold_results(TrackingConfig.from_dict(snakemake.config["tracking"]), snakemake.wildcards.model,
                     snakemake.wildcards.fold, "gradcam",
                     sorted(p for p in Path(snakemake.output[0]).rglob("*") if not p.name.startswith(".")))
