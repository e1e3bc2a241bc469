"""Rule evaluate: test metrics with the val-tuned threshold, and per-video predictions."""

from cineflow.config import EvalConfig, TrackingConfig
from cineflow.data.splits import parse_fold
from cineflow.devices import job_device
from cineflow.evaluate.fold import evaluate_fold
from cineflow.io import read_csv, read_parquet, write_csv, write_json
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.seeding import seed_everything
from cineflow.tracking import log_fold_results

with to_log(snakemake.log[0]), job_device() as device:
    seed_everything(snakemake.params.seed, snakemake.threads, snakemake.config["deterministic"])
    metrics, predictions = evaluate_fold(
        snakemake.input.model, read_csv(snakemake.input.split), read_parquet(snakemake.input.manifest),
        EvalConfig.from_dict(snakemake.params.evaluate), device, seed=snakemake.params.seed)
    repeat, fold = parse_fold(snakemake.wildcards.fold)
    metrics = {"model": snakemake.wildcards.model, "fold": fold, "repeat": repeat, "name": snakemake.wildcards.fold,
               **metrics,
               "provenance": provenance(snakemake.config, device)}
    write_csv(snakemake.output.predictions, predictions)
    write_json(snakemake.output.metrics, metrics)
    print({k: v for k, v in metrics["metrics"].items()})
    log_fold_results(TrackingConfig.from_dict(snakemake.config["tracking"]), snakemake.wildcards.model,
                     snakemake.wildcards.fold, "test", [snakemake.output.metrics, snakemake.output.predictions],
                     metrics["metrics"])
