"""Rule summarize: mean, sd and per-fold values of each metric of one model; out-of-fold predictions
with pooled metrics and bootstrap CIs; the fold files that `cineflow-predict` loads; the ensemble, where
tracked (tracking.log_ensemble)."""

from cineflow.config import EvalConfig, TrackingConfig
from cineflow.evaluate.summary import fold_files, summarize_model
from cineflow.io import write_json, write_parquet
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.tracking import log_ensemble

with to_log(snakemake.log[0]):
    summary, oof = summarize_model(snakemake.input.metrics, snakemake.input.predictions,
                                   EvalConfig.from_dict(snakemake.params.evaluate), snakemake.params.seed)
    write_parquet(snakemake.output.oof, oof)
    write_json(snakemake.output.summary, {
        "model": snakemake.wildcards.model, **summary,
        "files": fold_files(snakemake.input.models, snakemake.input.metrics, snakemake.input.references,
                            snakemake.output.summary),
        "provenance": provenance(snakemake.config)})
    log_ensemble(TrackingConfig.from_dict(snakemake.config["tracking"]), snakemake.wildcards.model, summary,
                 [snakemake.output.summary])
