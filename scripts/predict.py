"""Rule predict: the ensemble of a model's fold models on new videos (config predict.input)."""

from pathlib import Path

from cineflow.config import EvalConfig, GradcamConfig
from cineflow.devices import job_device
from cineflow.evaluate.predict import predict_new_videos
from cineflow.io import frames_dir, read_json, write_csv
from cineflow.logs import to_log
from cineflow.seeding import seed_everything

with to_log(snakemake.log[0]), job_device() as device:
    seed_everything(snakemake.params.seed, snakemake.threads, snakemake.config["deterministic"])
    cams = Path(snakemake.output.gradcam)
    cams.mkdir(parents=True, exist_ok=True)
    with frames_dir(cams.parent) as work:
        table = predict_new_videos(
            snakemake.input.videos, snakemake.input.models, [read_json(p) for p in snakemake.input.metrics],
            EvalConfig.from_dict(snakemake.params.evaluate), work, device, snakemake.params.seed,
            GradcamConfig.from_dict(snakemake.params.gradcam) if snakemake.params.predict["gradcam"] else None,
            cams, snakemake.input.references)
    write_csv(snakemake.output.predictions, table)
    print(table.to_string())
