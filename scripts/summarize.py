"""Rule summarize: mean, sd and per-fold values of each metric of one model; out-of-fold predictions
with pooled metrics and bootstrap CIs."""

from cineflow.atomic import write_json, write_parquet
from cineflow.config import EvalConfig
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.summary import summarize_model

with to_log(snakemake.log[0]):
    summary, oof = summarize_model(snakemake.input.metrics, snakemake.input.predictions,
                                   EvalConfig.from_dict(snakemake.params.evaluate), snakemake.params.seed)
    write_parquet(snakemake.output.oof, oof)
    write_json(snakemake.output.summary, {"model": snakemake.wildcards.model, **summary,
                                          "provenance": provenance(snakemake.config)})
