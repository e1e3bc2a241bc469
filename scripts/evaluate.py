"""Rule evaluate: test metrics with the val-tuned threshold, per-video predictions and, in the same job (one model
load, one job start), the fold model's in-distribution reference for the input-shift warning (train embeddings and
input features, the threshold calibrated on val)."""

from cineflow.config import EvalConfig, TrackingConfig
from cineflow.data.splits import fold_rows
from cineflow.devices import job_device
from cineflow.evaluate.fold import fold_record
from cineflow.evaluate.shift import reference_of, save_reference
from cineflow.io import read_csv, read_parquet, write_csv, write_json
from cineflow.logs import to_log
from cineflow.models.trained import TrainedModel
from cineflow.provenance import provenance
from cineflow.seeding import seed_everything
from cineflow.tracking import log_fold_results

with to_log(snakemake.log[0]), job_device() as device:
    seed = snakemake.params.seed
    seed_everything(seed, snakemake.threads, snakemake.config["deterministic"])
    cfg = EvalConfig.from_dict(snakemake.params.evaluate)
    trained = TrainedModel.load(snakemake.input.model, device)
    split, manifest = read_csv(snakemake.input.split), read_parquet(snakemake.input.manifest)
    metrics, predictions = fold_record(trained, split, manifest, cfg, device, seed=seed,
                                       names=(snakemake.wildcards.model, snakemake.wildcards.fold),
                                       provenance=provenance(snakemake.config, device))
    write_csv(snakemake.output.predictions, predictions)
    write_json(snakemake.output.metrics, metrics)
    print({k: v for k, v in metrics["metrics"].items()})
    # seeded again: the reference is the same whether or not the evaluation ran before it in this process
    seed_everything(seed, snakemake.threads, snakemake.config["deterministic"])
    ref = reference_of(trained, fold_rows(split, manifest, "train"), fold_rows(split, manifest, "val"), cfg, device,
                       seed)
    save_reference(snakemake.output.reference, ref)
    print(f"shift reference: embedding threshold {float(ref['threshold']):.3f} over {len(ref['centre'])} dimensions")
    log_fold_results(TrackingConfig.from_dict(snakemake.config["tracking"]), snakemake.wildcards.model,
                     snakemake.wildcards.fold, "test", [snakemake.output.metrics, snakemake.output.predictions],
                     metrics["metrics"])
