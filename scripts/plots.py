"""Rule plots: the figures of one model as PNG files (report items) that the HTML report embeds."""

from pathlib import Path

from cineflow.config import TrackingConfig
from cineflow.evaluate.summary import first_repeat
from cineflow.io import read_csv, read_json, read_parquet, write_json
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.report.plots import Inputs, render_figures
from cineflow.tracking import log_fold_results

with to_log(snakemake.log[0]):
    fold_metrics = [read_json(p) for p in snakemake.input.metrics]
    histories = {m.get("name", m["fold"]): read_csv(p, keep_default_na=True)
                 for m, p in zip(fold_metrics, snakemake.input.histories)}
    inputs = Inputs(first_repeat(read_parquet(snakemake.input.oof)), read_json(snakemake.input.summary), fold_metrics,
                    histories)
    index = render_figures(inputs, snakemake.output[0])
    write_json(Path(snakemake.output[0]) / "figures.json",
               {"figures": index, "provenance": provenance(snakemake.config)})
    print(index)
    figures = sorted(Path(snakemake.output[0]).glob("*.png"))
    for fold in histories:  # the model's figures (all its folds) in each fold's run
        log_fold_results(TrackingConfig.from_dict(snakemake.config["tracking"]), snakemake.wildcards.model, fold,
                         "plots", figures)
