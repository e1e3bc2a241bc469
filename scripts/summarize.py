"""Rule summarize: mean, sd and per-fold values of each metric of one model."""

from cineflow.atomic import write_json
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.summary import summarize_files

with to_log(snakemake.log[0]):
    summary = summarize_files(snakemake.input.metrics)
    write_json(snakemake.output[0], {"model": snakemake.wildcards.model, **summary,
                                     "provenance": provenance(snakemake.config)})
