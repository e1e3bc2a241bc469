"""Rule splits: one CSV per fold (train/val/test by group)."""

import pandas as pd

from cineflow.atomic import write_csv
from cineflow.config import SplitConfig
from cineflow.logs import to_log
from cineflow.splits import make_splits

with to_log(snakemake.log[0]):
    folds = make_splits(pd.read_parquet(snakemake.input.manifest), SplitConfig.from_dict(snakemake.params.splits),
                        snakemake.params.seed)
    for path, table in zip(snakemake.output, folds):
        write_csv(path, table)
        print(path, table["partition"].value_counts().to_dict())
