"""Rule plots: the figures of one model as PNG files (report items) that the HTML report embeds."""

import json

import pandas as pd

from cineflow.logs import to_log
from cineflow.plots import Inputs, render_figures
from cineflow.provenance import provenance

with to_log(snakemake.log[0]):
    fold_metrics = [json.loads(open(p, encoding="utf-8").read()) for p in snakemake.input.metrics]
    with open(snakemake.input.summary, encoding="utf-8") as fh:
        summary = json.load(fh)
    histories = {m["fold"]: pd.read_csv(p) for m, p in zip(fold_metrics, snakemake.input.histories)}
    inputs = Inputs(pd.read_parquet(snakemake.input.oof), summary, fold_metrics, histories)
    print(render_figures(inputs, snakemake.output[0], provenance(snakemake.config)))
