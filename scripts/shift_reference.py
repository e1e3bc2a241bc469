"""Rule shift_reference: a fold model's in-distribution reference for the input-shift warning (train
embeddings and input features, the threshold calibrated on val)."""

from cineflow.config import EvalConfig
from cineflow.data.splits import fold_rows
from cineflow.devices import job_device
from cineflow.evaluate.shift import reference_of, save_reference
from cineflow.io import read_csv, read_parquet
from cineflow.logs import to_log
from cineflow.models.trained import TrainedModel
from cineflow.seeding import seed_everything

with to_log(snakemake.log[0]), job_device() as device:
    seed_everything(snakemake.params.seed, snakemake.threads, snakemake.config["deterministic"])
    trained = TrainedModel.load(snakemake.input.model, device)
    split, manifest = read_csv(snakemake.input.split), read_parquet(snakemake.input.manifest)
    ref = reference_of(trained, fold_rows(split, manifest, "train"), fold_rows(split, manifest, "val"),
                       EvalConfig.from_dict(snakemake.params.evaluate), device, snakemake.params.seed)
    save_reference(snakemake.output[0], ref)
    print(f"embedding threshold {float(ref['threshold']):.3f} over {len(ref['centre'])} dimensions")
