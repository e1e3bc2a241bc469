"""Rule train: one model on one fold."""

import json

import pandas as pd

from cineflow.config import ModelConfig
from cineflow.logs import to_log
from cineflow.provenance import provenance
from cineflow.seeding import seed_everything
from cineflow.trainer import train_fold

with to_log(snakemake.log[0]):
    device = seed_everything(snakemake.params.seed, snakemake.threads)
    print(f"device: {device}")
    train_fold(ModelConfig.from_dict(snakemake.params.model), snakemake.params.classes,
               pd.read_csv(snakemake.input.split, keep_default_na=False), pd.read_parquet(snakemake.input.manifest),
               json.loads(open(snakemake.input.norm, encoding="utf-8").read()),
               snakemake.output.model, snakemake.output.history, snakemake.params.state, snakemake.params.seed,
               device, provenance(snakemake.config))
